"""Everything the stack may keep, and why (issue 22 item 7): an allow-list, checked against
every bucket, object, table, item, queue and queued message of the local AWS.

`assert_only_what_may_be_kept` enumerates what is there (ListBuckets, ListObjectsV2,
ListTables, Scan, ListQueues, and each queue's messages, held and made visible again) and fails
on a bucket, key prefix, table or queue that is not on the list, on an item attribute that its
table's model does not declare, and on anything that breaks its entry's rule. Nothing is
exempted for belonging to another deployment: a row that names nobody's deployment must still
be one the list allows. docs/privacy.md is the same list in prose.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from chalicelib.ingest.continuity import STATE_KEYS, TRACK_KEYS, TRACK_TTL_S
from chalicelib.local.inspect import all_keys
from chalicelib.names import dlq_name
from chalicelib.store import layout
from chalicelib.store.tables import idempotency_table_name


def scan_items(ddb: Any, table: str) -> list[dict[str, Any]]:
    """Every item of a table, as DynamoDB returns them."""
    pages = ddb.get_paginator("scan").paginate(TableName=table)
    return [item for page in pages for item in page.get("Items", [])]


HOLD_S = 30  # queued messages are held this long while read, then made visible at once


@dataclass(frozen=True)
class Entry:
    what: str  # bucket:prefix, table (short name) or queue (short name)
    why: str  # why it may be kept: what it holds about whom, for how long


# Objects, by bucket ("frames", "evidence") and key prefix.
OBJECTS = {
    ("frames", layout.FRAMES_PREFIX): Entry(
        "frames:frames/", "a frame batch (everyone in view) only while its notification is on "
        "the frames queue or its dead-letter queue: deleted once processed"),
    ("frames", layout.ARCHIVE_PREFIX): Entry(
        "frames:archive/", "footage an operator uploaded for `lfr batch`, for a deployment "
        "that exists; the bucket's lifecycle rule expires it"),
    ("evidence", layout.CROPS_PREFIX): Entry(
        "evidence:crops/", "the face crop of an alert (a match), while its alert row says the "
        "crop is kept"),
    ("evidence", layout.REFERENCES_PREFIX): Entry(
        "evidence:references/", "a watchlisted subject's reference image, while the subject "
        "is on a list that is not destroyed"),
    ("evidence", layout.SNAPSHOTS_PREFIX): Entry(
        "evidence:snapshots/", "a watchlist's packed templates: its own subjects only, while "
        "the list is not destroyed"),
}
TABLES = {
    "watchlists": Entry("watchlists", "a list's name, state, authorisation and snapshot "
                        "pointer, and removed subjects' ids: no biometric data"),
    "subjects": Entry("subjects", "a watchlisted person: name, template, reference key, "
                      "while the list is not destroyed"),
    "deployments": Entry("deployments", "a deployment's settings and counts, and the false "
                         "alerts ruled out (alert id, subject, score, until)"),
    "devices": Entry("devices", "an officer's phone on a deployment (a push endpoint)"),
    "alerts": Entry("alerts", "a match: subject, score, box, times, crop key, adjudication; no "
                    "pixels, no embedding"),
    "sightings": Entry("sightings", "a matched subject's recent passings at one camera, each "
                       "with its alert"),
    "tracks": Entry("tracks", "geometry, times, quality and decision flags of the tracks a "
                    "camera's next batch continues; a subject only on a track that alerted; a "
                    "minute at most"),
    "applied": Entry("applied", "ids of frame batches applied (hashes of key and ETag): about "
                     "objects, nobody"),
    "audit": Entry("audit", "who did what to which id, when: ids and counts"),
    "cameras": Entry("cameras", "a camera's gateway health: counts, times, state"),
    "idempotency": Entry("idempotency", "a processed batch's result: counts and alert ids"),
}
QUEUES = {
    "frames": Entry("frames", "S3 notifications of frame batches (bucket, key, ETag)"),
    "frames-dlq": Entry("frames-dlq", "the same, dead-lettered with why (ids, counts)"),
    "alerts": Entry("alerts", "an alert's id"),
    "alerts-dlq": Entry("alerts-dlq", "the same, dead-lettered with why"),
}
IDEMPOTENT_RESULT = {"key", "status", "alerts", "frames_total", "frames_processed",
                     "frames_skipped", "faces_seen", "faces_rejected", "matches", "timings_ms",
                     "tracks", "faces_embedded", "alerts_continued", "keyframes", "passings",
                     "continued", "decisions"}
HEALTH_KEYS = {"report", "totals", "state", "since", "last_heartbeat_at"}


class NotKept(AssertionError):
    """Something the stack holds that the allow-list does not allow."""


@dataclass
class Inventory:
    rt: Any
    whole_server: bool = True
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # short table -> items
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # short queue ->

    def ours(self, name: str) -> bool:
        return self.whole_server or name.startswith(self.rt.settings.prefix + "-")

    def table(self, short: str) -> list[dict[str, Any]]:
        return self.rows.get(short, [])

    def find(self, short: str, **key: str) -> dict[str, Any] | None:
        return next((i for i in self.table(short)
                     if all(_s(i, k) == v for k, v in key.items())), None)


def assert_only_what_may_be_kept(rt: Any, whole_server: bool = True) -> None:
    """`whole_server`: everything on the server is this stack's (a moto server the run started
    itself). False on a shared one (LFR_TEST_ENDPOINT, LocalStack): only names with the stack's
    prefix are read, the rest being other runs'."""
    s = rt.settings
    inv = Inventory(rt, whole_server)
    _read_tables(inv)
    _read_queues(inv)
    s3 = rt.client("s3")
    buckets = {s.frames_bucket: "frames", s.evidence_bucket: "evidence"}
    for b in s3.list_buckets().get("Buckets", []):
        if inv.ours(b["Name"]) and b["Name"] not in buckets:
            raise NotKept(f"bucket {b['Name']} is on no list of what may be kept")
    for bucket, short in buckets.items():
        for key in all_keys(s3, bucket):
            rule = next((p for (b, p) in OBJECTS if b == short and key.startswith(p)), None)
            if rule is None:
                raise NotKept(f"s3://{bucket}/{key}: no entry for this prefix")
            _OBJECT_RULES[rule](inv, bucket, key)
    for short, items in inv.rows.items():
        model = _model(rt, short)
        for item in items:
            if model is not None:
                unknown = set(item) - {a.attr_name for a in model.get_attributes().values()}
                if unknown:
                    raise NotKept(f"{short}: attributes {sorted(unknown)} are on no model")
            _TABLE_RULES[short](inv, item)
    for short, msgs in inv.messages.items():
        for m in msgs:
            _QUEUE_RULES[short](inv, m)


# --- reading -------------------------------------------------------------------------------

def _read_tables(inv: Inventory) -> None:
    s, ddb = inv.rt.settings, inv.rt.client("dynamodb")
    known = {f"{s.table_prefix}-{short}": short for short in TABLES}
    known[idempotency_table_name(s)] = "idempotency"
    for page in ddb.get_paginator("list_tables").paginate():
        for name in page["TableNames"]:
            if not inv.ours(name):
                continue
            if name not in known:
                raise NotKept(f"table {name} is on no list of what may be kept")
            inv.rows[known[name]] = scan_items(ddb, name)


def _read_queues(inv: Inventory) -> None:
    s, sqs = inv.rt.settings, inv.rt.client("sqs")
    known = {s.frames_queue: "frames", dlq_name(s.frames_queue): "frames-dlq",
             s.alerts_queue: "alerts", dlq_name(s.alerts_queue): "alerts-dlq"}
    for url in sqs.list_queues().get("QueueUrls", []):
        name = url.rsplit("/", 1)[-1]
        if not inv.ours(name):
            continue
        if name not in known:
            raise NotKept(f"queue {name} is on no list of what may be kept")
        inv.messages[known[name]] = _peek(sqs, url)


def _peek(sqs: Any, url: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    try:
        while True:
            page = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                       VisibilityTimeout=HOLD_S, WaitTimeSeconds=0,
                                       MessageAttributeNames=["All"]).get("Messages", [])
            if not page:
                return got
            got += page
    finally:
        for i in range(0, len(got), 10):
            sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for n, m in enumerate(got[i : i + 10])])


def _model(rt: Any, short: str) -> Any:
    return next((m for m in rt.tables.all()
                 if m.Meta.table_name == f"{rt.settings.table_prefix}-{short}"), None)


def _s(item: dict[str, Any], name: str) -> str | None:
    v = item.get(name)
    return None if v is None else str(v.get("S", v.get("N", "")))


def _has_binary(value: Any) -> bool:
    if isinstance(value, dict):
        return "B" in value or "BS" in value or any(_has_binary(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_binary(v) for v in value)
    return False


def _fail_if(cond: bool, what: str) -> None:
    if cond:
        raise NotKept(what)


# --- objects -------------------------------------------------------------------------------

def _frames(inv: Inventory, bucket: str, key: str) -> None:
    from chalicelib.store.s3_events import NotificationError, s3_objects

    named = set()
    for short in ("frames", "frames-dlq"):
        for m in inv.messages.get(short, []):
            try:
                named |= {o["key"] for o in s3_objects(m["Body"])}
            except NotificationError:
                continue
    _fail_if(key not in named, f"s3://{bucket}/{key}: frames no queued batch names")


def _archive(inv: Inventory, bucket: str, key: str) -> None:
    dep = key.removeprefix(layout.ARCHIVE_PREFIX).split("/", 1)[0]
    _fail_if(inv.find("deployments", deployment_id=dep) is None,
             f"s3://{bucket}/{key}: footage of no deployment")


def _crop(inv: Inventory, bucket: str, key: str) -> None:
    alert = inv.find("alerts", crop_key=key)
    _fail_if(alert is None or "crop_deleted_at" in alert,
             f"s3://{bucket}/{key}: a crop no alert keeps")


def _reference(inv: Inventory, bucket: str, key: str) -> None:
    m = re.fullmatch(r"references/([^/]+)/([^/]+)\.jpg", key)
    ok = m is not None and inv.find("subjects", watchlist_id=m[1], subject_id=m[2]) is not None
    _fail_if(not ok or not _list_alive(inv, m[1] if m else ""),
             f"s3://{bucket}/{key}: the image of no watchlisted subject")


def _snapshot(inv: Inventory, bucket: str, key: str) -> None:
    wl = key.removeprefix(layout.SNAPSHOTS_PREFIX).split("/", 1)[0]
    _fail_if(not _list_alive(inv, wl), f"s3://{bucket}/{key}: snapshot of no living list")
    body = inv.rt.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with np.load(io.BytesIO(body), allow_pickle=False) as z:
        ids = set(z["ids"].tolist())
    members = {_s(i, "subject_id") for i in inv.table("subjects") if _s(i, "watchlist_id") == wl}
    _fail_if(not ids <= members, f"s3://{bucket}/{key}: templates of people not on the list")


def _list_alive(inv: Inventory, wl: str) -> bool:
    row = inv.find("watchlists", watchlist_id=wl)
    return row is not None and _s(row, "status") != "destroyed"


_OBJECT_RULES: dict[str, Callable[[Inventory, str, str], None]] = {
    layout.FRAMES_PREFIX: _frames, layout.ARCHIVE_PREFIX: _archive,
    layout.CROPS_PREFIX: _crop, layout.REFERENCES_PREFIX: _reference,
    layout.SNAPSHOTS_PREFIX: _snapshot,
}


# --- table items ---------------------------------------------------------------------------

def _no_binary(short: str) -> Callable[[Inventory, dict[str, Any]], None]:
    def check(inv: Inventory, item: dict[str, Any]) -> None:
        _fail_if(_has_binary(item), f"{short}: binary data in {sorted(item)}")
    return check


def _subject(inv: Inventory, item: dict[str, Any]) -> None:
    _fail_if(not _list_alive(inv, _s(item, "watchlist_id") or ""),
             f"subjects: {_s(item, 'subject_id')} on no living list")


def _deployment(inv: Inventory, item: dict[str, Any]) -> None:
    _no_binary("deployments")(inv, item)
    for alert_id, entry in (item.get("lookalikes", {}).get("M") or {}).items():
        _fail_if(set(entry.get("M", {})) - {"subject_id", "score", "until"} != set(),
                 f"deployments: look-alike {alert_id} holds more than its alert's fields")
        _fail_if(inv.find("alerts", alert_id=alert_id) is None,
                 f"deployments: look-alike {alert_id} of no alert")


def _device(inv: Inventory, item: dict[str, Any]) -> None:
    _fail_if(inv.find("deployments", deployment_id=_s(item, "deployment_id") or "") is None,
             "devices: a phone on no deployment")


def _alert(inv: Inventory, item: dict[str, Any]) -> None:
    _no_binary("alerts")(inv, item)
    _fail_if(not _s(item, "subject_id") or not _s(item, "watchlist_id"),
             f"alerts: {_s(item, 'alert_id')} names no watchlisted subject")


def _sighting(inv: Inventory, item: dict[str, Any]) -> None:
    subject = _s(item, "subject_id")
    for p in json.loads(_s(item, "passings") or "[]"):
        alert = inv.find("alerts", alert_id=str(p.get("alert_id")))
        _fail_if(alert is None or _s(alert, "subject_id") != subject,
                 f"sightings: a passing of {subject} without its alert")


def _track_state(inv: Inventory, item: dict[str, Any]) -> None:
    _fail_if(_has_binary(item), "tracks: binary data")
    dep = (_s(item, "camera_key") or "").split("#", 1)[0]
    alerted = {_s(a, "subject_id") for a in inv.table("alerts")
               if _s(a, "deployment_id") == dep}
    state = json.loads(_s(item, "state") or "{}")
    _fail_if(not set(state) <= STATE_KEYS, f"tracks: state keys {sorted(state)}")
    for track in state.get("tracks", []):
        _fail_if(not set(track) <= TRACK_KEYS, f"tracks: track keys {sorted(track)}")
        _fail_if(track.get("subject_id") is not None and track["subject_id"] not in alerted,
                 "tracks: a subject on a track that raised no alert")
        _fail_if(not all(isinstance(v, (int, float))
                         for v in track["first_box"] + track["last_box"]),
                 "tracks: a box that is not numbers")
    written = datetime.fromisoformat(_s(item, "written_at") or "").timestamp()
    _fail_if(float(_s(item, "expires_at") or 0) > written + TRACK_TTL_S + 1,
             "tracks: kept longer than a minute")


def _applied(inv: Inventory, item: dict[str, Any]) -> None:
    _fail_if(not re.fullmatch(r"[0-9a-f]{16}", _s(item, "batch_id") or ""),
             f"applied: {_s(item, 'batch_id')!r} is not a batch id")


def _audit(inv: Inventory, item: dict[str, Any]) -> None:
    _no_binary("audit")(inv, item)


def _camera(inv: Inventory, item: dict[str, Any]) -> None:
    from chalicelib.api import Heartbeat

    health = json.loads(_s(item, "health") or "{}")
    _fail_if(not set(health) <= HEALTH_KEYS, f"cameras: health keys {sorted(health)}")
    report = set(health.get("report") or {})
    _fail_if(not report <= set(Heartbeat.model_fields) | {"frames_shed_total"},
             f"cameras: report fields {sorted(report)}")


def _idempotency(inv: Inventory, item: dict[str, Any]) -> None:
    data = json.loads(_s(item, "data") or "{}") or {}
    _fail_if(not set(data) <= IDEMPOTENT_RESULT, f"idempotency: result fields {sorted(data)}")


_TABLE_RULES: dict[str, Callable[[Inventory, dict[str, Any]], None]] = {
    "watchlists": _no_binary("watchlists"), "subjects": _subject, "deployments": _deployment,
    "devices": _device, "alerts": _alert, "sightings": _sighting, "tracks": _track_state,
    "applied": _applied, "audit": _audit, "cameras": _camera, "idempotency": _idempotency,
}


# --- queued messages -----------------------------------------------------------------------

def _notification(inv: Inventory, m: dict[str, Any]) -> None:
    from chalicelib.deadletter import ERROR
    from chalicelib.store.s3_events import NotificationError, s3_objects

    try:
        objects = s3_objects(m["Body"])
    except NotificationError:
        # A message that was never a notification, dead-lettered as such for the operator.
        error = m.get("MessageAttributes", {}).get(ERROR, {}).get("StringValue")
        _fail_if(error != "NotificationError", "frames: a message that is no notification")
        return
    for o in objects:
        _fail_if(not o["key"].startswith(layout.FRAMES_PREFIX),
                 f"frames: a notification of {o['key']}")


def _alert_message(inv: Inventory, m: dict[str, Any]) -> None:
    try:
        body = json.loads(m["Body"])
    except ValueError:
        body = {"not JSON": None}
    ok = isinstance(body, dict) and set(body) == {"alert_id"} and \
        inv.find("alerts", alert_id=str(body["alert_id"])) is not None
    _fail_if(not ok, f"alerts: a message that is not an alert's id: {body!r:.80}")


_QUEUE_RULES: dict[str, Callable[[Inventory, dict[str, Any]], None]] = {
    "frames": _notification, "frames-dlq": _notification,
    "alerts": _alert_message, "alerts-dlq": _alert_message,
}
