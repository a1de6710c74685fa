"""`lfr dlq`: what is dead-lettered and why, and sending it back once the cause is fixed.

Listing does not consume: messages are received with a short visibility timeout and made
visible again at once. Redrive sends each chosen message to its source queue (its own body and
attributes, without our failure attributes) and only then deletes it from the DLQ: a failure in
between leaves a copy in both, never none, and the worker processes an S3 event once
(powertools idempotency), the notifier pushes an alert once (its claim on the alert row).

A dead-lettered frame batch's frames are kept for redrive Settings.dead_letter_frames_hours
after their upload, then deleted by the retention sweep: each listed batch says when
(`deleted_after`), and each message its age.

Receive/send/delete rather than SQS's StartMessageMoveTask: moto (the local AWS and the tests)
does not implement it, it moves a whole queue where `--id` picks messages, and it runs
asynchronously where an operator wants to see what moved.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib import deadletter
from chalicelib.names import dlq_name
from chalicelib.settings import Settings
from chalicelib.store.s3_events import NotificationError, s3_objects

# Long enough to read a page and act on it; what is not acted on is made visible at once.
HOLD_S = 30
MAX_MESSAGES = 1000
NOT_RECORDED = ("not recorded: SQS moved it after the function's last try ended without a "
                "verdict (a timeout or crash); see the function's logs at that time")


@dataclass
class DeadLetter:
    message_id: str  # in the dead-letter queue
    original_id: str  # in the source queue, when the handler recorded it
    queue: str
    source_queue: str
    error: str
    reason: str
    receives: int | None  # deliveries before it was dead-lettered
    failed_at: str
    sent_at: str
    age_s: int | None = None  # since it was dead-lettered (or sent, where that is not recorded)
    # frames: bucket, key, object (present/gone) and, while present, when it is deleted
    keys: list[dict[str, str]] = field(default_factory=list)
    alert_id: str | None = None  # alerts
    receipt: str = field(default="", repr=False)
    body: str = field(default="", repr=False)
    attributes: dict[str, Any] = field(default_factory=dict, repr=False)

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("receipt", "body", "attributes"):
            d.pop(k)
        return {k: v for k, v in d.items() if v not in (None, [], "")}


def source_queue(s: Settings, which: str) -> str:
    queues = {"frames": s.frames_queue, "alerts": s.alerts_queue}
    if which not in queues:
        raise ValueError(f"queue must be one of {sorted(queues)}")
    return queues[which]


def _attr(m: dict[str, Any], name: str) -> str:
    return str(m.get("MessageAttributes", {}).get(name, {}).get("StringValue", ""))


def _describe(m: dict[str, Any], which: str, source: str, s3: Any, hold: timedelta,
              now: datetime) -> DeadLetter:
    receives = _attr(m, deadletter.RECEIVES)
    sent = m.get("Attributes", {}).get("SentTimestamp")
    since = _when(_attr(m, deadletter.FAILED_AT)) or \
        (datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None)
    d = DeadLetter(
        message_id=m["MessageId"], original_id=_attr(m, deadletter.ORIGINAL_ID) or m["MessageId"],
        queue=which, source_queue=_attr(m, deadletter.SOURCE) or source,
        error=_attr(m, deadletter.ERROR), reason=_attr(m, deadletter.REASON) or NOT_RECORDED,
        # Without our record, SQS's own count (it includes this listing's receive).
        receives=int(receives) if receives else
        int(m.get("Attributes", {}).get("ApproximateReceiveCount", 0)) or None,
        failed_at=_attr(m, deadletter.FAILED_AT),
        sent_at=datetime.fromtimestamp(int(sent) / 1000, UTC).isoformat(timespec="seconds")
        if sent else "",
        age_s=max(0, int((now - since).total_seconds())) if since else None,
        receipt=m["ReceiptHandle"], body=m["Body"], attributes=m.get("MessageAttributes", {}),
    )
    if which == "frames":
        d.keys = _frame_keys(m["Body"], s3, hold)
    else:
        try:
            d.alert_id = str(json.loads(m["Body"])["alert_id"])
        except (ValueError, KeyError, TypeError):
            d.alert_id = None
    return d


def _when(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _frame_keys(body: str, s3: Any, hold: timedelta) -> list[dict[str, str]]:
    """The batch objects a notification names, whether each is still there (a batch rejected
    as malformed is deleted on its last try: its frames show passers-by) and, while it is, when
    the retention sweep deletes it."""
    try:
        objects = s3_objects(body)
    except NotificationError:
        return []
    out = []
    for o in objects:
        entry = {"bucket": o["bucket"], "key": o["key"]}
        try:
            head = s3.head_object(Bucket=o["bucket"], Key=o["key"])
            entry["object"] = "present"
            entry["deleted_after"] = (head["LastModified"] + hold).isoformat(timespec="seconds")
        except s3.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            entry["object"] = "gone" if code in ("404", "NoSuchKey", "NotFound") \
                else f"unknown ({code})"
        out.append(entry)
    return out


@contextmanager
def held(sqs: Any, s: Settings, which: str, s3: Any,
         limit: int = MAX_MESSAGES) -> Iterator[list[DeadLetter]]:
    """Every message of the queue's DLQ (up to `limit`), held invisible while in use; what is
    still held when the block ends is made visible again."""
    source = source_queue(s, which)
    url = sqs.get_queue_url(QueueName=dlq_name(source))["QueueUrl"]
    got: list[DeadLetter] = []
    seen: set[str] = set()
    hold, now = timedelta(hours=s.dead_letter_frames_hours), datetime.now(UTC)
    try:
        while len(got) < limit:
            page = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=min(10, limit - len(got)),
                VisibilityTimeout=HOLD_S, WaitTimeSeconds=1,  # long poll: asks every server
                AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
            fresh = [m for m in page if m["MessageId"] not in seen]
            if not fresh:
                break
            for m in fresh:
                seen.add(m["MessageId"])
                got.append(_describe(m, which, source, s3, hold, now))
        yield got
    finally:
        release(sqs, url, [d for d in got if d.receipt])


def release(sqs: Any, url: str, letters: list[DeadLetter]) -> None:
    for i in range(0, len(letters), 10):
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
            {"Id": str(n), "ReceiptHandle": d.receipt, "VisibilityTimeout": 0}
            for n, d in enumerate(letters[i : i + 10])])


def list_dead_letters(sqs: Any, s3: Any, s: Settings, which: str,
                      limit: int = MAX_MESSAGES) -> list[DeadLetter]:
    with held(sqs, s, which, s3, limit) as letters:
        return list(letters)


@dataclass
class RedriveReport:
    moved: list[dict[str, str]] = field(default_factory=list)  # dead-letter id -> new id
    not_found: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)


def redrive(sqs: Any, s3: Any, s: Settings, which: str, ids: list[str] | None) -> RedriveReport:
    """Sends the chosen dead letters (by dead-letter or original message id; None: all) back
    to their source queue, each deleted from the DLQ only once it is sent."""
    report = RedriveReport()
    source = source_queue(s, which)
    wanted = set(ids or [])
    with held(sqs, s, which, s3) as letters:
        dlq_url = sqs.get_queue_url(QueueName=dlq_name(source))["QueueUrl"]
        found: set[str] = set()
        for d in letters:
            if ids is not None and not {d.message_id, d.original_id} & wanted:
                continue
            found |= {d.message_id, d.original_id}
            try:
                target = sqs.get_queue_url(QueueName=d.source_queue)["QueueUrl"]
                kwargs: dict[str, Any] = {"QueueUrl": target, "MessageBody": d.body}
                own = deadletter.own_attributes(d.attributes)
                if own:
                    kwargs["MessageAttributes"] = own
                new_id = sqs.send_message(**kwargs)["MessageId"]
            except Exception as exc:  # stays in the DLQ, visible again when the block ends
                report.failed.append({"message_id": d.message_id, "error": str(exc)[:300]})
                continue
            moved = {"message_id": d.message_id, "new_message_id": new_id,
                     "source_queue": d.source_queue}
            try:
                sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=d.receipt)
                d.receipt = ""  # gone from the DLQ: nothing to release
            except Exception as exc:
                moved["note"] = (f"sent, but still in the DLQ ({str(exc)[:200]}): the copy is "
                                 "processed once; redrive it again or let it expire")
            if any(k["object"] == "gone" for k in d.keys):
                moved["frames"] = "its frames were deleted unprocessed: the worker will drop it"
            report.moved.append(moved)
        report.not_found = sorted(wanted - found)
    return report
