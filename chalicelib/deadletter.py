"""Dead letters that say why they died.

A message SQS moves to a dead-letter queue by its redrive policy carries nothing but its body:
the reason it failed would be in a log line of its last try only. So on a message's last
delivery (receive count = Settings.max_receive_count) a handler that fails on it sends it to the
DLQ itself, with the reason as message attributes, and reports the record done, so SQS deletes
it from the source queue. SQS's redrive policy allows one delivery more (queue_timing.py): a
message whose last try died (a timeout, a crash) or could not be dead-lettered comes back once
more, and is dead-lettered at once with that reason (NoAnswer), without being tried again. Only
where that send fails too does SQS's own redrive move the message, without a reason: nothing is
lost.

What is recorded: the exception's type and message (ids, keys, counts: nothing biometric flows
into exceptions here; truncated in any case), the receive count, the time and the source queue.
`lfr dlq list` reads them back, `lfr dlq redrive` sends the message back (ops/dlq.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib import queue_timing
from chalicelib.names import dlq_name

PREFIX = "lfr."
REASON = "lfr.reason"
ERROR = "lfr.error"
RECEIVES = "lfr.receive-count"
FAILED_AT = "lfr.failed-at"
SOURCE = "lfr.source-queue"
ORIGINAL_ID = "lfr.message-id"
MAX_REASON_CHARS = 1000
# SQS allows 10 message attributes; 6 are ours, so a message keeps at most 4 of its own.
MAX_OWN_ATTRIBUTES = 4


class NoAnswer(Exception):
    """The message's last try ended without the handler's verdict."""


def is_last_delivery(record: Any, max_receive_count: int) -> bool:
    """`record`: powertools' SQSRecord."""
    return int(record.attributes.approximate_receive_count or 0) >= max_receive_count


def queue_name_of(arn: str) -> str:
    return arn.rsplit(":", 1)[-1]


def own_attributes(attributes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A message's own attributes (not ours), in SendMessage's shape. Lambda's events spell
    them stringValue/dataType, ReceiveMessage StringValue/DataType: both are read."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in attributes.items():
        if name.startswith(PREFIX) or len(out) >= MAX_OWN_ATTRIBUTES:
            continue
        v = {k[0].upper() + k[1:]: x for k, x in value.items() if x is not None}
        kept = {k: v[k] for k in ("DataType", "StringValue", "BinaryValue") if k in v}
        if "DataType" in kept and ("StringValue" in kept or "BinaryValue" in kept):
            out[name] = kept
    return out


def failure_attributes(exc: BaseException, receives: int, source_queue: str,
                       message_id: str, now: datetime | None = None) -> dict[str, Any]:
    reason = f"{exc}".strip() or type(exc).__name__
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 3] + "..."
    now = now or datetime.now(UTC)

    def s(v: str) -> dict[str, str]:
        return {"DataType": "String", "StringValue": v}

    return {
        REASON: s(reason), ERROR: s(type(exc).__name__),
        RECEIVES: {"DataType": "Number", "StringValue": str(receives)},
        FAILED_AT: s(now.isoformat(timespec="seconds")),
        SOURCE: s(source_queue), ORIGINAL_ID: s(message_id),
    }


def park(sqs: Any, queue_url_of: Any, record: Any, exc: BaseException) -> str:
    """Sends the record to its source queue's DLQ with the reason; returns the new message id.
    `queue_url_of(name)` resolves a queue name (cached by the caller)."""
    source = queue_name_of(record.event_source_arn)
    original = record.raw_event.get("messageAttributes") or {}
    attributes = {
        **own_attributes(original),
        **failure_attributes(exc, int(record.attributes.approximate_receive_count or 0),
                             source, record.message_id),
    }
    return sqs.send_message(QueueUrl=queue_url_of(dlq_name(source)), MessageBody=record.body,
                            MessageAttributes=attributes)["MessageId"]


def park_last_delivery(rt: Any, record: Any, exc: BaseException, logger: Any) -> bool:
    """On the record's last delivery, parks it with its reason (True: report it done).
    `rt`: the Runtime; `logger`: the handler's powertools Logger."""
    if not is_last_delivery(record, rt.settings.max_receive_count):
        return False
    try:
        parked = park(rt.client("sqs"), rt.queue_url, record, exc)
    except Exception:
        # SQS's redrive policy moves it after this try instead: no reason, nothing lost.
        logger.exception("could not dead-letter with its reason", message_id=record.message_id)
        return False
    logger.error("dead-lettered with its reason", message_id=record.message_id,
                 dead_letter_id=parked, error=type(exc).__name__,
                 reason=str(exc)[:MAX_REASON_CHARS])
    return True


def park_if_past_last_try(rt: Any, record: Any, function: str, logger: Any) -> bool:
    """A delivery after the last try: that try timed out, crashed, or could not dead-letter the
    message. Dead-letters it now with that reason, untried (True: report it done)."""
    tries = rt.settings.max_receive_count
    receives = int(record.attributes.approximate_receive_count or 0)
    if receives <= tries:
        return False
    why = NoAnswer(
        f"try {tries} of {tries} ended without a verdict from {function}: it timed out (limit "
        f"{queue_timing.function_timeout_s(function)} s) or crashed, or could not dead-letter "
        f"the message itself; see its logs at that time (delivery {receives}, not tried)")
    return park_last_delivery(rt, record, why, logger)


def retry_soon(rt: Any, record: Any, logger: Any,
               after_s: int = queue_timing.RETRY_AFTER_S) -> None:
    """A record that failed (not on its last try) comes back after `after_s`, not after the
    queue's visibility timeout (six times the function's timeout). Best effort: else it comes
    back after the visibility timeout."""
    try:
        rt.client("sqs").change_message_visibility(
            QueueUrl=rt.queue_url(queue_name_of(record.event_source_arn)),
            ReceiptHandle=record.receipt_handle, VisibilityTimeout=after_s)
    except Exception:
        logger.warning("could not shorten the retry's wait", message_id=record.message_id)
