"""The steps of the stream path a fault can strike, and how to recognise each one.

An AWS step is recognised by service, operation and parameters at botocore's `_make_api_call`
(every boto3 and pynamodb call goes through it); the two vision steps by the function called.
"before": the request never leaves. "after": AWS did it, and the caller never learns so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Params = dict[str, Any]


def _table(suffix: str) -> Callable[[Params], bool]:
    return lambda p: str(p.get("TableName", "")).endswith(suffix)


def _values(p: Params) -> str:
    return repr(p.get("ExpressionAttributeValues", {})) + repr(
        p.get("ExpressionAttributeNames", {}))


@dataclass(frozen=True)
class Step:
    name: str
    function: str  # frames_worker | alerts_notifier | api (a subject's removal)
    service: str  # s3, dynamodb, sqs, sns; "vision" for the two in-process steps
    operation: str
    matches: Callable[[Params], bool]
    writes: bool  # a write: also struck "after" it landed


STEPS = [
    # The frames worker, in the order of one batch.
    Step("idempotency claim", "frames_worker", "dynamodb", "PutItem",
         _table("-idempotency"), True),
    Step("s3 get batch", "frames_worker", "s3", "GetObject",
         lambda p: str(p.get("Key", "")).startswith("frames/"), False),
    # A container's watchlist, loaded (or reloaded once its version moved: the same code,
    # ops/watchlist_index.IndexCache.get): the row, consistently, then the snapshot (the rows
    # decide when it cannot be read).
    Step("read watchlist row", "frames_worker", "dynamodb", "GetItem",
         lambda p: _table("-watchlists")(p) and bool(p.get("ConsistentRead")), False),
    Step("s3 get watchlist snapshot", "frames_worker", "s3", "GetObject",
         lambda p: str(p.get("Key", "")).startswith("snapshots/"), False),
    # A container's first batch of a deployment reads it alone (later ones with the tracks).
    Step("read deployment", "frames_worker", "dynamodb", "GetItem", _table("-deployments"),
         False),
    Step("decode", "frames_worker", "vision", "decode_jpeg", lambda p: True, False),
    Step("detect", "frames_worker", "vision", "detect", lambda p: True, False),
    Step("sighting claim", "frames_worker", "dynamodb", "PutItem", _table("-sightings"), True),
    Step("s3 put crop", "frames_worker", "s3", "PutObject",
         lambda p: str(p.get("Key", "")).startswith("crops/"), True),
    Step("alert row and audit", "frames_worker", "dynamodb", "TransactWriteItems",
         lambda p: "-alerts" in repr(p.get("TransactItems", [])), True),
    Step("sqs send alert", "frames_worker", "sqs", "SendMessage", lambda p: True, True),
    Step("track state and counters", "frames_worker", "dynamodb", "TransactWriteItems",
         lambda p: "-tracks" in repr(p.get("TransactItems", [])), True),
    Step("s3 delete batch", "frames_worker", "s3", "DeleteObject",
         lambda p: str(p.get("Key", "")).startswith("frames/"), True),
    Step("idempotency save", "frames_worker", "dynamodb", "UpdateItem",
         _table("-idempotency"), True),
    # The notifier, for one alert and two phones.
    Step("get alert", "alerts_notifier", "dynamodb", "GetItem", _table("-alerts"), False),
    Step("claim phone", "alerts_notifier", "dynamodb", "UpdateItem",
         lambda p: _table("-alerts")(p) and "'sending'" in _values(p), True),
    Step("find phones", "alerts_notifier", "dynamodb", "Query", _table("-devices"), False),
    Step("sns publish phone", "alerts_notifier", "sns", "Publish",
         lambda p: "TargetArn" in p, True),
    Step("record phone pushed", "alerts_notifier", "dynamodb", "UpdateItem",
         lambda p: _table("-alerts")(p) and "'sent'" in _values(p), True),
    Step("sns publish topic", "alerts_notifier", "sns", "Publish",
         lambda p: "TopicArn" in p, True),
    Step("mark notified", "alerts_notifier", "dynamodb", "UpdateItem",
         lambda p: _table("-alerts")(p) and "notified_at" in _values(p), True),
]
# The camera's next batch in a warm container (tests/integration/test_faults.py
# test_fault_warm): the deployment, watchlist version, tracks and applied id in one read, and
# the sighting of a matched passing still in view extended. (The tracks' transaction is struck
# by the cold cases already; warm, 6 more cases cost 13 s and found nothing new.)
WARM_STEPS = [
    Step("batch reads", "frames_worker", "dynamodb", "BatchGetItem", lambda p: True, False),
    Step("extend sighting", "frames_worker", "dynamodb", "PutItem", _table("-sightings"), True),
]
# A batch that fails every try (tests/integration/test_faults.py test_fault_dead_letter): the
# worker sends it to the dead-letter queue itself, with its reason.
DLQ_STEPS = [
    Step("dlq send", "frames_worker", "sqs", "SendMessage",
         lambda p: str(p.get("QueueUrl", "")).endswith("-dlq"), True),
]
# A warm container whose list changed while its snapshot cannot be used (refused: corrupt,
# tampered, stale, missing or unreadable): it reads the subject rows instead, one Query
# (ops/watchlist_index.load_index; tests/integration/test_faults.py
# test_fault_refused_snapshot). Only ever after the snapshot's refusal, so a case of its own.
REFUSED_STEPS = [
    Step("subjects query", "frames_worker", "dynamodb", "Query", _table("-subjects"), False),
]
# `DELETE /watchlists/{id}/subjects/{sid}` on an authorised list: every AWS call it makes.
REMOVAL_STEPS = [
    Step("read watchlist", "api", "dynamodb", "GetItem",
         lambda p: _table("-watchlists")(p) and not p.get("ConsistentRead"), False),
    Step("read subject", "api", "dynamodb", "GetItem", _table("-subjects"), False),
    Step("remove row, bump version, audit", "api", "dynamodb", "TransactWriteItems",
         lambda p: "-subjects" in repr(p.get("TransactItems", [])), True),
    Step("re-read watchlist", "api", "dynamodb", "GetItem",
         lambda p: _table("-watchlists")(p) and bool(p.get("ConsistentRead")), False),
    Step("delete reference image", "api", "s3", "DeleteObject",
         lambda p: str(p.get("Key", "")).startswith("references/"), True),
    Step("read subjects to repack", "api", "dynamodb", "Query", _table("-subjects"), False),
    Step("s3 put snapshot", "api", "s3", "PutObject",
         lambda p: str(p.get("Key", "")).startswith("snapshots/"), True),
    Step("record snapshot", "api", "dynamodb", "UpdateItem",
         lambda p: _table("-watchlists")(p) and "snapshot" in _values(p), True),
    Step("list snapshots", "api", "s3", "ListObjectsV2",
         lambda p: str(p.get("Prefix", "")).startswith("snapshots/"), False),
    Step("delete old snapshot", "api", "s3", "DeleteObjects", lambda p: True, True),
]
BY_NAME = {s.name: s for s in STEPS + WARM_STEPS + DLQ_STEPS + REFUSED_STEPS
           + REMOVAL_STEPS}
KINDS = ("fail", "crash", "kill")


def cases(steps: list[Step] = STEPS) -> list[tuple[str, str, str]]:
    """(step, when, kind) for every step, before it and (writes) after it, and every kind."""
    out = []
    for s in steps:
        for when in ("before", "after") if s.writes else ("before",):
            out += [(s.name, when, kind) for kind in KINDS]
    return out


def in_window(step: str, when: str) -> bool:
    """Between a publish SNS accepted and its record: the target is pushed again by the retry
    (the one duplicate the design leaves, documented in docs/faults.md)."""
    return (step.startswith("sns publish") and when == "after") or (
        step == "record phone pushed" and when == "before")
