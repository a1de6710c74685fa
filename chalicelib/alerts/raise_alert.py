"""Turning a match into an alert: evidence crop, alert row, alerts-queue message. Idempotent.

The alert id is derived from (deployment, camera, batch, subject), where the batch is named by its
content (object key and ETag) as well as its sequence: a batch delivered twice maps onto the same
alert (the row is written once, by a conditional put, and the notifier pushes once per alert id,
whatever the queue does), while a restarted gateway that counts from 0 again sends other bytes
under a reused sequence, and its batches get alert ids of their own.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import cv2
import numpy as np
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.matching.decision import Match
from chalicelib.ops import audit
from chalicelib.store import layout
from chalicelib.store.tables import Tables, connection_of, utcnow


@dataclass(frozen=True)
class AlertContext:
    deployment_id: str
    camera_id: str
    sequence: int
    batch_id: str  # names the batch's content; "" where the sequence alone names it (archives)
    watchlist_id: str
    model_id: str
    threshold: float
    target_fpir: float | None
    crop_retention_days: int


def alert_id_for(deployment_id: str, camera_id: str, sequence: int, subject_id: str,
                 batch_id: str = "") -> str:
    raw = f"{deployment_id}|{camera_id}|{sequence}|{batch_id}|{subject_id}".encode()
    return "al-" + hashlib.sha256(raw).hexdigest()[:24]


def raise_alert(
    tables: Tables,
    s3: Any,
    sqs: Any,
    evidence_bucket: str,
    alerts_queue_url: str,
    ctx: AlertContext,
    match: Match,
    display_name: str,
    lookalike_of: str | None = None,
) -> tuple[str, bool]:
    """Returns (alert id, created now?). Safe to call again for the same match.
    `lookalike_of`: the false alert this match resembles (ops/lookalikes.py): the alert is
    kept and flagged, but not queued for a push."""
    alert_id = alert_id_for(ctx.deployment_id, ctx.camera_id, ctx.sequence, match.subject_id,
                            ctx.batch_id)
    crop_key = layout.crop_key(ctx.deployment_id, alert_id)
    now = utcnow()
    expires = now + timedelta(days=ctx.crop_retention_days)
    _put_crop(s3, evidence_bucket, crop_key, match.crop, expires)
    alert = _alert_row(tables, ctx, alert_id, match, display_name, lookalike_of, crop_key, now,
                       expires)
    raised = audit.entry(tables, ctx.deployment_id, "system", "alert.raised", alert_id,
                         camera_id=ctx.camera_id, subject_id=match.subject_id,
                         score=round(match.score, 4), threshold=ctx.threshold,
                         **({"lookalike_of": lookalike_of} if lookalike_of else {}))
    alert, created = _write_once(tables, alert, raised)
    if alert.notified_at is None and not alert.lookalike_of:  # the row decides, on a retry too
        # Also re-sent when the row existed but its push never happened (a crash in between).
        sqs.send_message(QueueUrl=alerts_queue_url, MessageBody=json.dumps({"alert_id": alert_id}))
    return alert_id, created


def _put_crop(s3: Any, evidence_bucket: str, crop_key: str, crop: np.ndarray,
              expires: datetime) -> None:
    """The face crop, the alert's evidence, under crops/ (a put of the same key on a retry
    overwrites it)."""
    ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError("could not encode the alert crop")
    s3.put_object(
        Bucket=evidence_bucket,
        Key=crop_key,
        Body=jpeg.tobytes(),
        ContentType="image/jpeg",
        # Lifecycle rules expire crops/; the tag lets a sweep find them without reading rows.
        Tagging=f"expires={expires.date().isoformat()}",
    )


def _alert_row(tables: Tables, ctx: AlertContext, alert_id: str, match: Match,
               display_name: str, lookalike_of: str | None, crop_key: str, now: datetime,
               expires: datetime) -> Any:
    x1, y1, x2, y2 = match.box
    return tables.Alert(
        alert_id=alert_id,
        deployment_id=ctx.deployment_id,
        camera_id=ctx.camera_id,
        watchlist_id=ctx.watchlist_id,
        subject_id=match.subject_id,
        display_name=display_name,
        score=round(match.score, 6),
        threshold=ctx.threshold,
        target_fpir=ctx.target_fpir,
        model_id=ctx.model_id,
        batch_sequence=ctx.sequence,
        frame_index=match.frame_index,
        box={"x1": x1, "y1": y1, "x2": x2, "y2": y2},
        captured_at=match.captured_at,
        created_at=now,
        crop_key=crop_key,
        track_faces=match.track_faces,
        lookalike_of=lookalike_of,
        deliveries={},  # the notifier's delivery records (alerts/notify.py)
        expires_at=expires,
        sweep="crop",  # found by the retention sweep once expired (ops/retention.py)
    )


def _write_once(tables: Tables, alert: Any, raised: Any) -> tuple[Any, bool]:
    """Writes the alert row and its audit entry unless the row exists; returns the row as
    stored and whether it was written now."""
    # The row and its audit entry land together or not at all: a retry after a failure in
    # between would otherwise find the row and never write the entry.
    try:
        with TransactWrite(connection=connection_of(tables.Alert)) as tw:
            tw.save(alert, condition=tables.Alert.alert_id.does_not_exist())
            tw.save(raised, condition=tables.Audit.entry.does_not_exist())
    except TransactWriteError as exc:
        reasons = exc.cancellation_reasons
        if not reasons or reasons[0] is None or reasons[0].code != "ConditionalCheckFailed":
            raise
        return tables.Alert.get(alert.alert_id, consistent_read=True), False
    return alert, True
