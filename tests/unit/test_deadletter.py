"""Dead letters carry their reason, and only their own attributes travel back on redrive."""

from __future__ import annotations

from datetime import UTC, datetime

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib import deadletter


def _record(receives: int, attributes: dict | None = None) -> SQSRecord:
    return SQSRecord({"messageId": "m-1", "body": "{}", "eventSourceARN":
                      "arn:aws:sqs:eu-west-2:123456789012:lfr-dev-frames",
                      "attributes": {"ApproximateReceiveCount": str(receives)},
                      "messageAttributes": attributes or {}})


def test_only_the_last_delivery_is_parked() -> None:
    assert not deadletter.is_last_delivery(_record(2), 3)
    assert deadletter.is_last_delivery(_record(3), 3)


def test_failure_attributes_say_why_within_limits() -> None:
    got = deadletter.failure_attributes(ValueError("x" * 5000), 3, "lfr-dev-frames", "m-1",
                                        datetime(2026, 11, 26, tzinfo=UTC))
    assert len(got[deadletter.REASON]["StringValue"]) == deadletter.MAX_REASON_CHARS
    assert got[deadletter.ERROR]["StringValue"] == "ValueError"
    assert got[deadletter.RECEIVES] == {"DataType": "Number", "StringValue": "3"}
    assert got[deadletter.FAILED_AT]["StringValue"] == "2026-11-26T00:00:00+00:00"
    assert got[deadletter.SOURCE]["StringValue"] == "lfr-dev-frames"
    # Every name is one SQS accepts, and with a message's own 4 there are at most 10.
    assert len(got) + deadletter.MAX_OWN_ATTRIBUTES <= 10
    assert all(n.replace(".", "").replace("-", "").isalnum() for n in got)
    assert deadletter.failure_attributes(KeyError(), 1, "q", "m")[deadletter.REASON][
        "StringValue"] == "KeyError"


def test_own_attributes_in_either_spelling_and_never_ours() -> None:
    lambda_style = {"deployment_id": {"stringValue": "dep-1", "dataType": "String",
                                      "binaryValue": None}}
    api_style = {"n": {"StringValue": "2", "DataType": "Number"},
                 deadletter.REASON: {"StringValue": "old reason", "DataType": "String"}}
    assert deadletter.own_attributes({**lambda_style, **api_style}) == {
        "deployment_id": {"DataType": "String", "StringValue": "dep-1"},
        "n": {"DataType": "Number", "StringValue": "2"}}
    many = {f"a{i}": {"StringValue": "v", "DataType": "String"} for i in range(8)}
    assert len(deadletter.own_attributes(many)) == deadletter.MAX_OWN_ATTRIBUTES


def test_park_sends_the_body_to_the_sources_dlq() -> None:
    sent: list[dict] = []

    class Sqs:
        def send_message(self, **kw: object) -> dict:
            sent.append(kw)
            return {"MessageId": "d-1"}

    assert deadletter.park(Sqs(), lambda name: f"url/{name}", _record(3),
                           RuntimeError("boom")) == "d-1"
    [kw] = sent
    assert kw["QueueUrl"] == "url/lfr-dev-frames-dlq" and kw["MessageBody"] == "{}"
    assert kw["MessageAttributes"][deadletter.ORIGINAL_ID]["StringValue"] == "m-1"
    assert kw["MessageAttributes"][deadletter.REASON]["StringValue"] == "boom"


def test_a_failed_record_comes_back_soon_not_after_the_long_visibility_timeout() -> None:
    """The queues' visibility is six times the functions' timeout (queue_timing.py); a record
    its handler reported failed is made visible again after RETRY_AFTER_S instead."""
    from types import SimpleNamespace

    from chalicelib import queue_timing

    calls: list[dict] = []

    class Sqs:
        def change_message_visibility(self, **kw: object) -> None:
            calls.append(kw)

    rt = SimpleNamespace(client=lambda name: Sqs(), queue_url=lambda name: f"url/{name}")
    record = SQSRecord({**_record(1).raw_event, "receiptHandle": "rh-1"})
    deadletter.retry_soon(rt, record, logger=None)
    assert calls == [{"QueueUrl": "url/lfr-dev-frames", "ReceiptHandle": "rh-1",
                      "VisibilityTimeout": queue_timing.RETRY_AFTER_S}]
    assert queue_timing.visibility_timeout_s("frames") > queue_timing.RETRY_AFTER_S
