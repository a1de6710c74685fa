"""The privacy check can fail (issue 22 item 7): each kind of thing the stack must not keep,
planted on a real local stack (moto server), is caught by `assert_only_what_may_be_kept`. The
check that came before it scoped itself to one deployment's rows and known prefixes, and let
every one of these through."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.ingest.worker import s3_objects
from chalicelib.store import layout
from tests.integration.kept import NotKept, assert_only_what_may_be_kept


@pytest.fixture
def stack(rt: Any, local_stack: dict[str, Any]) -> Iterator[Any]:
    whole = local_stack["session"].resettable
    assert_only_what_may_be_kept(rt, whole)  # nothing planted yet: it passes
    yield rt


def _put(rt: Any, bucket: str, key: str) -> Callable[[], None]:
    s3 = rt.client("s3")
    s3.put_object(Bucket=bucket, Key=key, Body=b"\xff\xd8 a face")
    return lambda: s3.delete_object(Bucket=bucket, Key=key)


def _unknown_prefix(rt: Any) -> Callable[[], None]:
    return _put(rt, rt.settings.evidence_bucket, "exports/dep-x/face.jpg")


def _frames_left_behind(rt: Any) -> Callable[[], None]:
    """A batch whose notification is gone (processed, the delete failed): no queue names it."""
    undo = _put(rt, rt.settings.frames_bucket, layout.batch_key("dep-x", "cam-1", 7))
    sqs, url = rt.client("sqs"), rt.queue_url(rt.settings.frames_queue)
    key = layout.batch_key("dep-x", "cam-1", 7)
    for _ in range(10):  # S3 notifies the queue of the upload: take that message off it
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                  WaitTimeSeconds=1).get("Messages", [])
        for m in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        if any(key in [o["key"] for o in s3_objects(m["Body"])] for m in got):
            return undo
    raise AssertionError("S3 never notified the frames queue")


def _crop_of_no_alert(rt: Any) -> Callable[[], None]:
    return _put(rt, rt.settings.evidence_bucket, layout.crop_key("dep-x", "al-none"))


def _unknown_bucket(rt: Any) -> Callable[[], None]:
    s3, name = rt.client("s3"), f"{rt.settings.prefix}-scratch"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={
        "LocationConstraint": rt.settings.region})
    s3.put_object(Bucket=name, Key="faces.npz", Body=b"x")

    def undo() -> None:
        s3.delete_object(Bucket=name, Key="faces.npz")
        s3.delete_bucket(Bucket=name)
    return undo


def _unknown_table(rt: Any) -> Callable[[], None]:
    ddb, name = rt.client("dynamodb"), f"{rt.settings.prefix}-faces"
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}])
    return lambda: ddb.delete_table(TableName=name)


def _row(rt: Any, table: str, item: dict[str, Any]) -> Callable[[], None]:
    ddb = rt.client("dynamodb")
    name = f"{rt.settings.prefix}-{table}"
    ddb.put_item(TableName=name, Item=item)
    key = {k: item[k] for k in (
        a["AttributeName"] for a in ddb.describe_table(TableName=name)["Table"]["KeySchema"])}
    return lambda: ddb.delete_item(TableName=name, Key=key)


def _embedding_on_a_row_of_nobody(rt: Any) -> Callable[[], None]:
    # Names no deployment and no watchlist: the old check never looked at it.
    return _row(rt, "sightings", {"camera_key": {"S": "nobody#cam"},
                                  "subject_id": {"S": "passer-by"},
                                  "embedding": {"B": b"\x00" * 512}})


def _a_passer_by_s_track_named(rt: Any) -> Callable[[], None]:
    now = datetime.now(UTC)
    state = {"format": 2, "last_key_t": None, "tracks": [{
        "tid": "t1", "first_t": 1.0, "last_t": 2.0, "first_box": [0, 0, 9, 9],
        "last_box": [0, 0, 9, 9], "velocity": None, "seen_at": 1.0, "subject_id": "s-no-alert"}]}
    return _row(rt, "tracks", {
        "camera_key": {"S": "dep-none#cam-1"}, "version": {"N": "1"},
        "state": {"S": json.dumps(state)}, "written_at": {"S": now.isoformat()},
        "expires_at": {"N": str(int(now.timestamp()) + 30)}, "sweep": {"S": "due"}})


def _phone_of_no_deployment(rt: Any) -> Callable[[], None]:
    return _row(rt, "devices", {"deployment_id": {"S": "dep-none"}, "device_id": {"S": "d1"},
                                "officer_id": {"S": "o1"}, "platform": {"S": "gcm"},
                                "endpoint_arn": {"S": "arn:x"}})


def _unknown_queue(rt: Any) -> Callable[[], None]:
    sqs = rt.client("sqs")
    url = sqs.create_queue(QueueName=f"{rt.settings.prefix}-faces")["QueueUrl"]
    return lambda: sqs.delete_queue(QueueUrl=url)


def _alert_message_with_more(rt: Any) -> Callable[[], None]:
    from chalicelib.names import dlq_name

    sqs = rt.client("sqs")
    url = rt.queue_url(dlq_name(rt.settings.alerts_queue))
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"alert_id": "al-x", "crop": "..."}))

    def undo() -> None:
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return undo


PLANTED = [_unknown_prefix, _frames_left_behind, _crop_of_no_alert, _unknown_bucket,
           _unknown_table, _embedding_on_a_row_of_nobody, _a_passer_by_s_track_named,
           _phone_of_no_deployment, _unknown_queue, _alert_message_with_more]


@pytest.mark.parametrize("plant", PLANTED, ids=lambda f: f.__name__.strip("_"))
def test_what_is_on_no_list_is_caught(stack: Any, local_stack: dict[str, Any],
                                      plant: Callable[[Any], Callable[[], None]]) -> None:
    undo = plant(stack)
    try:
        with pytest.raises(NotKept):
            assert_only_what_may_be_kept(stack, local_stack["session"].resettable)
    finally:
        undo()
