"""Across batches of one camera: is this match a new passing, or the one already alerted?

Batches of one camera may be processed concurrently and delivered twice, so the decision is a
conditional write, not a read-then-write: the first batch to claim (camera, subject) after the
quiet window raises the alert; batches of the same passing only extend its last_seen.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pynamodb.exceptions import UpdateError

from chalicelib.store.tables import Tables

_KEEP = timedelta(days=1)


def camera_key(deployment_id: str, camera_id: str) -> str:
    return f"{deployment_id}#{camera_id}"


def claim_sighting(
    tables: Tables,
    deployment_id: str,
    camera_id: str,
    subject_id: str,
    alert_id: str,
    captured_at: datetime,
    window_s: int,
) -> bool:
    """True: raise `alert_id` (new passing, or a retry of the batch that claimed it)."""
    S = tables.Sighting
    item = S(camera_key(deployment_id, camera_id), subject_id)
    quiet_since = captured_at - timedelta(seconds=window_s)
    try:
        item.update(
            actions=[
                S.alert_id.set(alert_id),
                S.first_seen.set(captured_at),
                S.last_seen.set(captured_at),
                S.expires_at.set(captured_at + _KEEP),
            ],
            condition=S.subject_id.does_not_exist() | (S.last_seen < quiet_since),
        )
        return True
    except UpdateError as exc:
        if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
            raise
    item.refresh(consistent_read=True)
    if item.alert_id == alert_id:
        return True
    if captured_at > item.last_seen:
        try:
            item.update(actions=[S.last_seen.set(captured_at)],
                        condition=S.last_seen < captured_at)
        except UpdateError as exc:
            if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
                raise
    return False


def extend_sighting(tables: Tables, deployment_id: str, camera_id: str, subject_id: str,
                    seen: datetime) -> None:
    """A matched passing seen again (its track continued): push its last_seen forward."""
    S = tables.Sighting
    try:
        S(camera_key(deployment_id, camera_id), subject_id).update(
            actions=[S.last_seen.set(seen), S.expires_at.set(seen + _KEEP)],
            condition=S.subject_id.exists() & (S.last_seen < seen))
    except UpdateError as exc:
        if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
            raise
