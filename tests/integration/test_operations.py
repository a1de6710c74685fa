"""Operations on a real AWS API (moto server): the alarms the local stack creates, and dead
letters that say why they failed, listed without being consumed and redriven once fixed."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from chalice.test import Client

from chalicelib import cli, monitoring
from chalicelib.local.inspect import all_keys
from chalicelib.names import dlq_name
from chalicelib.ops.dlq import NOT_RECORDED
from chalicelib.store import layout
from tests.integration.conftest import demo_person, jpeg


def test_the_local_stack_alarms_on_dead_letters_and_function_errors(rt, local_stack) -> None:
    s = rt.settings
    cw, sns = rt.client("cloudwatch"), rt.client("sns")
    ops = [t["TopicArn"] for t in sns.list_topics()["Topics"]
           if t["TopicArn"].endswith(":" + s.ops_topic)]
    assert len(ops) == 1
    got = {a["AlarmName"]: a for a in cw.describe_alarms(
        AlarmNamePrefix=f"lfr-{s.stage}-")["MetricAlarms"]}
    want = {
        f"{dlq_name(s.frames_queue)}-not-empty": ("QueueName", dlq_name(s.frames_queue)),
        f"{dlq_name(s.alerts_queue)}-not-empty": ("QueueName", dlq_name(s.alerts_queue)),
        f"lfr-{s.stage}-frames_worker-errors": ("FunctionName", f"lfr-{s.stage}-frames_worker"),
        f"lfr-{s.stage}-alerts_notifier-errors":
            ("FunctionName", f"lfr-{s.stage}-alerts_notifier"),
        f"lfr-{s.stage}-retention_sweep-errors":
            ("FunctionName", f"lfr-{s.stage}-retention_sweep"),
        # Items the sweep could not delete (ops/retention.py report: its EMF metric).
        f"lfr-{s.stage}-retention-failures": ("service", "lfr-retention"),
    }
    assert set(got) == set(want)
    for name, (dim, value) in want.items():
        a = got[name]
        assert a["Dimensions"] == [{"Name": dim, "Value": value}]
        assert (a["Namespace"], a["MetricName"]) == {
            "QueueName": ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
            "FunctionName": ("AWS/Lambda", "Errors"),
            "service": ("LiveFacialRecognition", "RetentionFailures")}[dim]
        assert (a["Threshold"], a["ComparisonOperator"]) == (0.0, "GreaterThanThreshold")
        assert a["AlarmActions"] == a["OKActions"] == ops
    # The DLQs the alarms watch are the ones the queues dead-letter to.
    sqs = rt.client("sqs")
    for q in (s.frames_queue, s.alerts_queue):
        policy = json.loads(sqs.get_queue_attributes(
            QueueUrl=rt.queue_url(q), AttributeNames=["RedrivePolicy"])["Attributes"][
            "RedrivePolicy"])
        assert policy["deadLetterTargetArn"].endswith(":" + dlq_name(q))
    assert {a.name for a in monitoring.alarms(s)} == set(want)


def _lfr(capsys: Any, *args: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    rc = cli.main(list(args))
    return rc, json.loads(capsys.readouterr().out)


def _mine(listing: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [m for m in listing["messages"] if any(k["key"] == key for k in m.get("keys", []))]


def _visible(rt: Any, queue: str) -> int:
    attrs = rt.client("sqs").get_queue_attributes(
        QueueUrl=rt.queue_url(dlq_name(queue)), AttributeNames=["ApproximateNumberOfMessages"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def test_a_batch_failing_every_try_is_listed_with_its_reason_then_redriven_once_fixed(
        scenario_factory, local_stack, capsys) -> None:
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]}, devices=1)
    rt = sc.rt
    s3 = rt.client("s3")
    key = layout.batch_key(sc.deployment_id, sc.camera_id, 0)
    tries: list[str] = []

    def deny(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == key:
            tries.append(key)
            raise ClientError({"Error": {"Code": "AccessDenied",
                                         "Message": "injected: the worker may not read it"}},
                              "GetObject")

    # The poison: the worker's role cannot read the batch (e.g. a key policy gone wrong).
    s3.meta.events.register_first("before-parameter-build.s3.GetObject", deny)
    try:
        sc.upload(0, [jpeg(demo_person("Cory_Gardner", 2))])
        local_stack["pump"].drain(timeout=120)
    finally:
        s3.meta.events.unregister("before-parameter-build.s3.GetObject", deny)
    assert len(tries) == rt.settings.max_receive_count
    assert sc.alerts() == []

    rc, listing = _lfr(capsys, "dlq", "list", "--queue", "frames")
    assert rc == 0 and listing["dead_letter_queue"] == dlq_name(rt.settings.frames_queue)
    [m] = _mine(listing, key)
    assert m["receives"] == rt.settings.max_receive_count
    assert m["error"] == "ClientError" and "AccessDenied" in m["reason"]
    assert "injected: the worker may not read it" in m["reason"]
    assert [{k: v for k, v in x.items() if k != "deleted_after"} for x in m["keys"]] == \
        [{"bucket": rt.settings.frames_bucket, "key": key, "object": "present"}]
    assert m["source_queue"] == rt.settings.frames_queue and m["failed_at"]
    # Listing consumed nothing: the message is visible again, and listed again.
    assert _visible(rt, rt.settings.frames_queue) >= 1
    _, again = _lfr(capsys, "dlq", "list", "--queue", "frames")
    assert [x["message_id"] for x in _mine(again, key)] == [m["message_id"]]

    # The cause is fixed (the hook is gone): sent back, it is processed like any batch.
    rc, moved = _lfr(capsys, "dlq", "redrive", "--queue", "frames", "--id", m["message_id"])
    assert rc == 0 and [x["message_id"] for x in moved["moved"]] == [m["message_id"]]
    local_stack["pump"].drain(timeout=120)
    assert [a.subject_id for a in sc.alerts()] == [sc.subjects["Cory Gardner"]]
    assert len(sc.pushes()) == 1
    assert key not in all_keys(s3, rt.settings.frames_bucket)
    _, after = _lfr(capsys, "dlq", "list", "--queue", "frames")
    assert _mine(after, key) == []


def test_an_alert_whose_push_fails_every_try_is_pushed_once_after_redrive(
        scenario_factory, local_stack, capsys) -> None:
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]}, devices=1)
    rt = sc.rt
    sns = rt.client("sns")

    def outage(params: dict[str, Any], **_: Any) -> None:
        if params.get("TargetArn") in sc.devices:
            raise ClientError({"Error": {"Code": "InternalError", "Message": "injected"}},
                              "Publish")

    sns.meta.events.register_first("before-parameter-build.sns.Publish", outage)
    try:
        sc.upload(0, [jpeg(demo_person("Cory_Gardner", 2))])
        local_stack["pump"].drain(timeout=120)
    finally:
        sns.meta.events.unregister("before-parameter-build.sns.Publish", outage)
    [alert] = sc.alerts()
    assert sc.pushes() == []

    rc, listing = _lfr(capsys, "dlq", "list", "--queue", "alerts")
    mine = [m for m in listing["messages"] if m.get("alert_id") == alert.alert_id]
    assert rc == 0 and len(mine) == 1
    # The notifier pushed what it could and left the phone to a retry (alerts/notify.py).
    assert mine[0]["error"] == "PushesIncomplete" and "InternalError" in mine[0]["reason"]
    assert mine[0]["receives"] == rt.settings.max_receive_count

    rc, moved = _lfr(capsys, "dlq", "redrive", "--queue", "alerts", "--id",
                     mine[0]["original_id"])  # the id the notifier's log names works too
    assert rc == 0 and len(moved["moved"]) == 1
    local_stack["pump"].drain(timeout=120)
    pushes = sc.pushes()
    assert [p.data["alert_id"] for p in pushes] == [alert.alert_id]  # once, not twice


def test_a_message_sqs_moved_itself_is_listed_without_a_reason(rt, local_stack,
                                                                capsys) -> None:
    # What a timeout or crash on the last try leaves: SQS's redrive moves the bare message.
    s = rt.settings
    key = "frames/dep-gone/cam-1/000000000000000007.lfrb"
    body = json.dumps({"Records": [{
        "eventName": "ObjectCreated:Put", "eventTime": "2026-11-26T10:00:00.000Z",
        "s3": {"bucket": {"name": s.frames_bucket},
               "object": {"key": key, "eTag": "x", "sequencer": "01"}}}]})
    sqs = rt.client("sqs")
    sent = sqs.send_message(QueueUrl=rt.queue_url(dlq_name(s.frames_queue)),
                            MessageBody=body)["MessageId"]
    _, listing = _lfr(capsys, "dlq", "list", "--queue", "frames")
    [m] = _mine(listing, key)
    assert m["message_id"] == sent and m["reason"] == NOT_RECORDED
    assert m["keys"][0]["object"] == "gone"

    rc, moved = _lfr(capsys, "dlq", "redrive", "--queue", "frames", "--id", sent,
                     "--id", "no-such-message")
    assert rc == 1 and moved["not_found"] == ["no-such-message"]
    assert [x["message_id"] for x in moved["moved"]] == [sent]
    assert "deleted unprocessed" in moved["moved"][0]["frames"]
    local_stack["pump"].drain(timeout=60)  # the worker finds the object gone and drops it
    _, after = _lfr(capsys, "dlq", "list", "--queue", "frames")
    assert _mine(after, key) == []


def test_redrive_needs_ids_or_all() -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["dlq", "redrive", "--queue", "frames"])
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["dlq", "redrive", "--id", "x", "--all"])


def test_a_last_try_that_died_is_dead_lettered_with_a_reason(rt, local_stack, capsys) -> None:
    """Every try of a message ended without the function answering (a timeout or a crash: the
    poller lets the message go, as here, where each try is a receive that never deletes it).
    It still reaches the DLQ with a reason, not SQS's bare redrive."""
    s, sqs = rt.settings, rt.client("sqs")
    url = rt.queue_url(s.frames_queue)
    key = layout.batch_key("dep-died", "cam-1", 7)
    body = json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                                    "s3": {"bucket": {"name": s.frames_bucket},
                                           "object": {"key": key, "eTag": "x"}}}]})
    local_stack["pump"].drain(timeout=60)  # the queue holds this message only
    sqs.send_message(QueueUrl=url, MessageBody=body)
    for _ in range(s.max_receive_count):  # each try: received, then the function dies
        assert sqs.receive_message(QueueUrl=url, VisibilityTimeout=0,
                                   WaitTimeSeconds=1).get("Messages")
    local_stack["pump"].drain(timeout=60)

    rc, listing = _lfr(capsys, "dlq", "list", "--queue", "frames")
    [m] = _mine(listing, key)
    assert m["error"] == "NoAnswer", m
    assert "timed out" in m["reason"] and "crashed" in m["reason"]
    assert f"try {s.max_receive_count}" in m["reason"]
    rt.client("sqs").purge_queue(QueueUrl=rt.queue_url(dlq_name(s.frames_queue)))


def test_a_dead_lettered_batch_s_frames_are_kept_for_redrive_only_the_stated_hours(
        rt, local_stack, capsys, monkeypatch) -> None:
    """Issue 22 item 2: a batch dead-lettered for any reason but a format error keeps its
    frames (passers-by) for redrive LFR_DEAD_LETTER_FRAMES_HOURS, shown by `lfr dlq list` with
    its age, and the scheduled sweep deletes them after that, not the bucket's 1-day rule."""
    from chalicelib import deadletter
    from chalicelib.ingest.worker import s3_objects

    s, s3, sqs = rt.settings, rt.client("s3"), rt.client("sqs")
    key = layout.batch_key("dep-held", "cam-1", 3)
    s3.put_object(Bucket=s.frames_bucket, Key=key, Body=b"frames of passers-by")
    url = rt.queue_url(s.frames_queue)
    note = None
    for _ in range(10):  # S3's notification of it (past the bucket's own test event)
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                  WaitTimeSeconds=1).get("Messages", [])
        note = next((m for m in got if key in [o["key"] for o in s3_objects(m["Body"])]), note)
        if note:
            break
    assert note is not None
    # Dead-lettered on its last try, as the worker does it (here: S3 denied the read).
    sqs.send_message(QueueUrl=rt.queue_url(dlq_name(s.frames_queue)), MessageBody=note["Body"],
                     MessageAttributes=deadletter.failure_attributes(
                         RuntimeError("AccessDenied"), s.max_receive_count, s.frames_queue,
                         note["MessageId"]))
    sqs.delete_message(QueueUrl=url, ReceiptHandle=note["ReceiptHandle"])

    hold = timedelta(hours=s.dead_letter_frames_hours)
    assert timedelta(hours=1) <= hold < timedelta(days=1)
    _, listing = _lfr(capsys, "dlq", "list", "--queue", "frames")
    [m] = _mine(listing, key)
    assert 0 <= m["age_s"] < 600
    [k] = m["keys"]
    assert k["object"] == "present"
    uploaded = s3.head_object(Bucket=s.frames_bucket, Key=key)["LastModified"]
    assert datetime.fromisoformat(k["deleted_after"]) == \
        (uploaded + hold).replace(microsecond=0)

    def sweep_at(when: datetime) -> dict[str, Any]:
        monkeypatch.setattr("chalicelib.store.tables.utcnow", lambda: when)
        with Client(local_stack["app"]) as client:
            event = client.events.generate_cw_event(
                source="aws.events", detail_type="Scheduled Event", detail={}, resources=[])
            return client.lambda_.invoke("retention_sweep", event).payload

    sweep_at(uploaded + hold - timedelta(minutes=1))
    assert key in all_keys(s3, s.frames_bucket)  # still within its hold: redrive would work
    done = sweep_at(uploaded + hold + timedelta(minutes=1))
    assert key not in all_keys(s3, s.frames_bucket)
    assert done["dead_letter_frames_deleted"] >= 1 and done["failures"] == 0
    _, after = _lfr(capsys, "dlq", "list", "--queue", "frames")
    assert [k["object"] for k in _mine(after, key)[0]["keys"]] == ["gone"]
