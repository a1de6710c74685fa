"""The stream path on a real AWS API (moto server): gateway -> S3 -> SQS -> worker -> alerts ->
notifier -> push, with the event pump standing in for Lambda's event source mappings."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import numpy as np
import pytest

from chalicelib.gateway import GatewayOptions, PresignedUploader, run_gateway
from chalicelib.ingest.batch_format import pack_batch
from chalicelib.local.inspect import all_keys
from chalicelib.local.resources import dlq_name
from chalicelib.ops.cameras import camera_upload_grant
from chalicelib.store import layout
from tests.conftest import flag_encrypted, progressive_jpeg, shared_data
from tests.integration.conftest import demo_person, jpeg, log_records
from tests.integration.kept import assert_only_what_may_be_kept


def test_clip_alerts_him_only_and_keeps_nothing_else(scenario_factory, local_stack) -> None:
    ref = shared_data("video", "lin-manuel-miranda.png")
    clip = shared_data("video", "short_hamilton_clip.mp4")
    sc = scenario_factory({"Lin-Manuel Miranda": [ref]}, devices=1)
    rt, s = sc.rt, sc.rt.settings
    grant = camera_upload_grant(rt.client("s3"), s.frames_bucket, sc.deployment_id,
                                sc.camera_id, s.max_batch_bytes)
    report = run_gateway(str(clip), PresignedUploader(grant), sc.deployment_id, sc.camera_id,
                         GatewayOptions(fps=5, batch_frames=8))
    assert report.frames_sent >= 40
    local_stack["pump"].drain(timeout=300)

    alerts = sc.alerts()
    assert alerts, "no alert for the enrolled person"
    assert {a.subject_id for a in alerts} == {sc.subjects["Lin-Manuel Miranda"]}
    # He is on screen for the whole clip: one passing, so one alert, however many batches.
    assert len(alerts) == 1, [a.batch_sequence for a in alerts]
    assert alerts[0].track_faces >= 2
    pushes = sc.pushes()
    assert sorted(p.data["alert_id"] for p in pushes) == sorted(a.alert_id for a in alerts)
    assert all(p.data["subject"] == "Lin-Manuel Miranda" for p in pushes)

    deployment = rt.tables.Deployment.get(sc.deployment_id)
    assert deployment.frames == report.frames_sent
    assert deployment.faces_seen > len(alerts)  # the other man was seen, and forgotten
    assert_nothing_kept_about_unmatched(rt, sc, alerts, local_stack["session"].resettable)


def assert_nothing_kept_about_unmatched(rt: Any, sc: Any, alerts: list[Any],
                                       whole_server: bool) -> None:
    """Every bucket, object, table, item and queue of the stack against the list of what may
    be kept (tests/integration/kept.py), and this run's frames all gone."""
    s = rt.settings
    frames_left = [k for k in all_keys(rt.client("s3"), s.frames_bucket)
                   if k.startswith(layout.camera_prefix(sc.deployment_id, sc.camera_id))]
    assert frames_left == []
    assert {a.subject_id for a in alerts} <= set(sc.subjects.values())
    assert_only_what_may_be_kept(rt, whole_server)


def _dead_letters(rt: Any) -> list[str]:
    """The bodies in the frames dead-letter queue, taken off it."""
    sqs = rt.client("sqs")
    dlq = rt.queue_url(dlq_name(rt.settings.frames_queue))
    dead: list[str] = []
    for _ in range(50):  # all of it: other tests' dead letters may lie in front of ours
        got = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10,
                                  WaitTimeSeconds=1).get("Messages", [])
        for m in got:
            sqs.delete_message(QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"])
            dead.append(m["Body"])
        if dead and not got:
            break
    return dead


def _take_notification(rt: Any, deployment_id: str) -> str:
    """Takes the S3 notification of the deployment's upload off the frames queue: its body."""
    sqs = rt.client("sqs")
    url = rt.queue_url(rt.settings.frames_queue)
    body = None
    for _ in range(20):
        msgs = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
        for m in msgs:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            if deployment_id in m["Body"]:
                body = m["Body"]
        if body:
            break
    assert body, "no S3 notification arrived"
    return body


def test_same_event_twice_gives_one_alert_and_one_push(scenario_factory, local_stack) -> None:
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]}, devices=2)
    rt = sc.rt
    sc.upload(0, [jpeg(demo_person("Cory_Gardner", 2)), jpeg(demo_person("Anna_Eshoo", 2))])
    # Take the notification off the queue and deliver it twice, as SQS at-least-once may.
    body = _take_notification(rt, sc.deployment_id)
    sqs = rt.client("sqs")
    url = rt.queue_url(rt.settings.frames_queue)
    sqs.send_message(QueueUrl=url, MessageBody=body)
    sqs.send_message(QueueUrl=url, MessageBody=body)
    local_stack["pump"].drain(timeout=120)
    sqs.send_message(QueueUrl=url, MessageBody=body)  # and once more, long after
    local_stack["pump"].drain(timeout=120)

    alerts = sc.alerts()
    assert [a.subject_id for a in alerts] == [sc.subjects["Cory Gardner"]]
    pushes = sc.pushes()
    assert len(pushes) == 2  # one per registered phone
    assert {p.endpoint_arn for p in pushes} == set(sc.devices)
    assert rt.tables.Deployment.get(sc.deployment_id).batches == 1



def test_with_continuity_off_a_notification_delivered_again_in_flight_counts_once(
        scenario_factory, local_stack, monkeypatch) -> None:
    """With track continuity off (LFR_TRACK_CONTINUITY=0, to compare), a second delivery of
    the notification while the first is still at work (here: about to delete the object) is
    turned away by Powertools idempotency's in-progress claim and gets the first's result once
    that is saved; the applied batch id (docs/delivery.md) would also keep its counts out."""
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    from chalicelib.ingest.worker import FramesHandler
    from chalicelib.local.pump import LambdaContext, sqs_event

    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]})
    rt = sc.rt
    monkeypatch.setattr(rt, "settings", replace(rt.settings, track_continuity=False))
    key = sc.upload(0, [jpeg(demo_person("Cory_Gardner", 2))])
    body = _take_notification(rt, sc.deployment_id)
    handler = FramesHandler(rt)

    def delivery(message_id: str) -> dict[str, Any]:
        return handler(sqs_event([{"MessageId": message_id, "ReceiptHandle": "r-" + message_id,
                                   "Body": body, "Attributes": {"ApproximateReceiveCount": "1"}}],
                                 "arn:aws:sqs:eu-west-2:123456789012:frames", rt.settings.region),
                       LambdaContext("frames_worker"))

    s3, second = rt.client("s3"), []

    def deliver_again(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == key and not second:
            second.append("delivered")
            try:  # SQS hands the same notification to another worker
                second[0] = delivery("m-2")
            except BatchProcessingError as exc:  # every record failed: the invocation fails
                second[0] = exc.child_exceptions[0][0].__name__

    s3.meta.events.register_first("before-parameter-build.s3.DeleteObject", deliver_again)
    try:
        first = delivery("m-1")
    finally:
        s3.meta.events.unregister("before-parameter-build.s3.DeleteObject", deliver_again)
    assert first == {"batchItemFailures": []}
    assert second == ["IdempotencyAlreadyInProgressError"]
    assert delivery("m-2") == {"batchItemFailures": []}  # its retry: the first's result
    assert rt.tables.Deployment.get(sc.deployment_id).batches == 1
    assert len(sc.alerts()) == 1

def _jpeg_of(width: int, height: int) -> bytes:
    image = np.full((height, width, 3), 127, np.uint8)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 50])
    assert ok
    return buf.tobytes()


def test_bad_frames_are_skipped_and_counted(scenario_factory, local_stack, caplog) -> None:
    sc = scenario_factory({"Elizabeth Warren": [demo_person("Elizabeth_Warren", 1)]})
    good = jpeg(demo_person("Elizabeth_Warren", 2))
    corrupt = good[:200] + bytes(np.random.default_rng(0).integers(0, 255, 3000, np.uint8)) \
        + good[-2:]
    frames = [
        corrupt,
        good[: len(good) // 2],  # truncated
        b"",  # zero bytes
        b"this is not an image at all, just text",
        _jpeg_of(4000, 2200),  # more pixels than max_frame_pixels (3840x2160)
        jpeg(demo_person("Anna_Eshoo", 2)),
        good,
    ]
    caplog.clear()
    sc.upload(0, frames)
    local_stack["pump"].drain(timeout=120)

    lines = [x for x in log_records(caplog, "batch processed")
             if sc.deployment_id in x["key"]]
    assert len(lines) == 1
    assert lines[0]["frames_processed"] == 2
    assert lines[0]["frames_skipped"] == {
        "corrupt": 1, "truncated": 1, "empty": 1, "not_jpeg": 1, "too_large": 1}
    dep = sc.rt.tables.Deployment.get(sc.deployment_id)
    assert (dep.frames, dep.frames_skipped) == (2, 5)
    assert [a.display_name for a in sc.alerts()] == ["Elizabeth Warren"]


def test_a_progressive_frame_with_1500_scans_loses_only_itself(scenario_factory, local_stack,
                                                               caplog) -> None:
    # I-3: decoding it took seconds (30-39 s on Lambda); it is refused from its headers.
    sc = scenario_factory({"Elizabeth Warren": [demo_person("Elizabeth_Warren", 1)]})
    caplog.clear()
    sc.upload(0, [progressive_jpeg(3840, 2160, repeats=1500),
                  jpeg(demo_person("Elizabeth_Warren", 2))])
    local_stack["pump"].drain(timeout=120)
    lines = [x for x in log_records(caplog, "batch processed") if sc.deployment_id in x["key"]]
    assert len(lines) == 1
    assert lines[0]["frames_skipped"] == {"too_many_scans": 1}
    assert lines[0]["frames_processed"] == 1
    assert lines[0]["timings_ms"].get("decode", 0) < 1000
    dep = sc.rt.tables.Deployment.get(sc.deployment_id)
    assert (dep.frames, dep.frames_skipped) == (1, 1)
    assert [a.display_name for a in sc.alerts()] == ["Elizabeth Warren"]


def test_malformed_manifest_is_retried_then_dead_lettered(scenario_factory, local_stack,
                                                          caplog) -> None:
    sc = scenario_factory({"Gwen Moore": [demo_person("Gwen_Moore", 1)]})
    rt = sc.rt
    caplog.clear()
    key = sc.put_malformed(jpeg(demo_person("Gwen_Moore", 2)))
    local_stack["pump"].drain(timeout=120)

    dead = _dead_letters(rt)
    assert any(key.replace("/", "%2F") in b or key in b for b in dead)
    rejected = [x for x in log_records(caplog, "batch rejected") if x["key"] == key]
    assert len(rejected) >= 2, "retried before dead-lettering"
    assert all("sequence" in x["reason"] and "captured_at" in x["reason"] for x in rejected)
    assert sc.alerts() == []
    # After the last try the frames are deleted, not left for the lifecycle rule.
    assert log_records(caplog, "rejected batch deleted unprocessed")
    assert key not in all_keys(rt.client("s3"), rt.settings.frames_bucket)


def test_deployment_topic_fires_and_a_removed_subject_stops_matching_at_once(
    scenario_factory, local_stack, caplog
) -> None:
    sc = scenario_factory({"Barbara Lee": [demo_person("Barbara_Lee", 1)],
                           "Gwen Moore": [demo_person("Gwen_Moore", 1)]})
    rt = sc.rt
    # A control room listens on the deployment topic, filtered to this deployment.
    sqs, sns = rt.client("sqs"), rt.client("sns")
    q = sqs.create_queue(QueueName=f"control-{sc.deployment_id}")["QueueUrl"]
    q_arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    sns.subscribe(TopicArn=rt.topic_arn, Protocol="sqs", Endpoint=q_arn,
                  Attributes={"FilterPolicy": json.dumps({"deployment_id": [sc.deployment_id]}),
                              "RawMessageDelivery": "true"})
    gwen = jpeg(demo_person("Gwen_Moore", 2))
    t0 = datetime.now(UTC)
    sc.upload(0, [gwen], at=t0)
    local_stack["pump"].drain(timeout=120)
    assert [a.display_name for a in sc.alerts()] == ["Gwen Moore"]
    got = sqs.receive_message(QueueUrl=q, WaitTimeSeconds=2).get("Messages", [])
    assert [json.loads(m["Body"])["alert_id"] for m in got] == [sc.alerts()[0].alert_id]

    # Taken off the list (e.g. no longer wanted): the warm worker reloads its index at once.
    from chalicelib.ops.watchlists import remove_subject

    remove_subject(rt.tables, rt.client("s3"), rt.settings.evidence_bucket, sc.watchlist_id,
                   sc.subjects["Gwen Moore"], "operator-1")
    caplog.clear()
    # Captured 2 s later, past the key-frame interval (LFR_KEY_INTERVAL_S), so the whole frame
    # is searched again: set here, not left to how long the drain above happened to take.
    sc.upload(1, [gwen], at=t0 + timedelta(seconds=2))
    local_stack["pump"].drain(timeout=120)
    lines = [x for x in log_records(caplog, "batch processed") if sc.deployment_id in x["key"]]
    assert [(x["faces_seen"], x["matches"]) for x in lines] == [(1, 0)]
    sqs.delete_queue(QueueUrl=q)  # the control room's, not the stack's
    # A removed subject's alert stays for the record; nothing else of her does.
    assert_only_what_may_be_kept(rt, local_stack["session"].resettable)


def test_a_message_that_is_not_a_notification_is_dead_lettered_with_its_reason(
        rt, local_stack, caplog) -> None:
    sqs = rt.client("sqs")
    caplog.clear()
    sqs.send_message(QueueUrl=rt.queue_url(rt.settings.frames_queue), MessageBody="[1, 2, 3]")
    local_stack["pump"].drain(timeout=120)
    rejected = log_records(caplog, "notification rejected")
    assert len(rejected) >= 2 and all(r["levelname"] == "ERROR" for r in rejected)
    assert all("JSON list" in r["reason"] for r in rejected)
    dead = _dead_letters(rt)
    assert "[1, 2, 3]" in dead
    sqs.send_message(QueueUrl=rt.queue_url(dlq_name(rt.settings.frames_queue)),
                     MessageBody=dead[dead.index("[1, 2, 3]")], MessageAttributes={
                         "lfr.error": {"DataType": "String", "StringValue": "NotificationError"}})
    # A dead letter that was never a notification may be kept, for the operator to see.
    assert_only_what_may_be_kept(rt, local_stack["session"].resettable)


def test_an_encrypted_frame_loses_only_itself(scenario_factory, local_stack) -> None:
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]})
    rt = sc.rt
    good = jpeg(demo_person("Cory_Gardner", 2))
    now = datetime.now(UTC)
    body = pack_batch(sc.deployment_id, sc.camera_id, 0, [(now, good), (now, good)])
    key = layout.batch_key(sc.deployment_id, sc.camera_id, 0)
    rt.client("s3").put_object(Bucket=rt.settings.frames_bucket, Key=key,
                               Body=flag_encrypted(body, "000000.jpg"))
    local_stack["pump"].drain(timeout=120)
    assert [a.subject_id for a in sc.alerts()] == [sc.subjects["Cory Gardner"]]
    dep = rt.tables.Deployment.get(sc.deployment_id)
    assert (dep.frames, dep.frames_skipped) == (1, 1)
    assert key not in all_keys(rt.client("s3"), rt.settings.frames_bucket)


def test_identical_bytes_uploaded_again_are_processed_and_deleted(scenario_factory,
                                                                  local_stack) -> None:
    # F-5: a gateway retries an upload that had succeeded. The second object must not be left
    # in S3 (it shows passers-by), nor be decided or counted a second time.
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]}, devices=1)
    rt = sc.rt
    now = datetime.now(UTC)
    body = pack_batch(sc.deployment_id, sc.camera_id, 0,
                      [(now, jpeg(demo_person("Cory_Gardner", 2)))])
    key = layout.batch_key(sc.deployment_id, sc.camera_id, 0)
    for _ in range(2):
        rt.client("s3").put_object(Bucket=rt.settings.frames_bucket, Key=key, Body=body)
        local_stack["pump"].drain(timeout=120)
        assert key not in all_keys(rt.client("s3"), rt.settings.frames_bucket)
    assert len(sc.alerts()) == 1 and len(sc.pushes()) == 1
    assert rt.tables.Deployment.get(sc.deployment_id).batches == 1


@pytest.mark.parametrize("continuity", [True, False], ids=["continuity", "continuity-off"])
def test_a_retry_after_a_failed_delete_counts_the_batch_once(scenario_factory, local_stack,
                                                            monkeypatch, continuity) -> None:
    # F-6: the batch is decided, alerted and counted, then deleting its object fails: SQS
    # redelivers it. The retry finds the batch's id applied (store/tables.AppliedBatch, kept 2
    # days; here the retry comes after the pump's backoff, on AWS after RETRY_AFTER_S), with
    # track continuity on or off (LFR_TRACK_CONTINUITY=0 keeps no tracks, but still the id).
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]}, devices=1)
    rt = sc.rt
    monkeypatch.setattr(rt, "settings", replace(rt.settings, track_continuity=continuity))
    s3 = rt.client("s3")
    failed: list[str] = []

    def fail_once(params: dict[str, Any], **_: Any) -> None:
        if not failed and params.get("Key", "").startswith(f"frames/{sc.deployment_id}/"):
            failed.append(params["Key"])
            raise RuntimeError("injected: S3 DeleteObject failed")

    s3.meta.events.register_first("before-parameter-build.s3.DeleteObject", fail_once)
    try:
        now = datetime.now(UTC)
        sc.upload(0, [jpeg(demo_person("Cory_Gardner", 2))], at=now)
        local_stack["pump"].drain(timeout=120)
    finally:
        s3.meta.events.unregister("before-parameter-build.s3.DeleteObject", fail_once)
    assert failed, "the failure was not injected"
    dep = rt.tables.Deployment.get(sc.deployment_id)
    assert (dep.batches, dep.frames) == (1, 1)
    assert len(sc.alerts()) == 1 and len(sc.pushes()) == 1
    assert not [k for k in all_keys(s3, rt.settings.frames_bucket) if sc.deployment_id in k]
