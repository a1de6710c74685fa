"""Across batches of one camera: is this match a new passing, or one already alerted?

One item per (camera, subject) holds the subject's recent passings in front of that camera: for
each, the alert raised and the capture times it spans. A match belongs to a passing when its
capture time lies within the quiet window of that passing's span, before or after it: batches
arrive late, twice, out of order and from DLQ redrives, so an earlier passing processed after a
later one is still a passing of its own (F-4) and still alerts.

Batches of one camera may be processed concurrently, so the item is read, changed and written
back under a version condition (pynamodb's VersionAttribute), and a writer that loses the race
reads again. What is kept is what the alerts already keep (subject, alert id, capture times),
for a day at most.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from pynamodb.exceptions import PutError

from chalicelib.store.tables import Tables

_KEEP = timedelta(days=1)
MAX_PASSINGS = 48  # a day of someone walking past every half hour; the oldest go first
_ATTEMPTS = 8


def camera_key(deployment_id: str, camera_id: str) -> str:
    return f"{deployment_id}#{camera_id}"


@dataclass
class Passing:
    alert_id: str
    first: float  # capture times, epoch seconds
    last: float


def _find(passings: list[Passing], t: float, window_s: float) -> Passing | None:
    """The passing a capture at `t` belongs to: the nearest whose span, widened by the quiet
    window on both sides, holds it."""
    near = [p for p in passings if p.first - window_s <= t <= p.last + window_s]
    return min(near, key=lambda p: max(p.first - t, t - p.last, 0.0), default=None)


def place(passings: list[Passing], alert_id: str, t: float, window_s: float,
          ) -> tuple[bool, list[Passing]]:
    """Pure core of `claim_sighting`: (raise `alert_id`?, the passings afterwards)."""
    out = [Passing(**asdict(p)) for p in passings]
    mine = next((p for p in out if p.alert_id == alert_id), None)
    if mine is None:
        mine = _find(out, t, window_s)
        if mine is not None:  # a later batch (or an earlier one) of a passing already alerted
            mine.first, mine.last = min(mine.first, t), max(mine.last, t)
            return False, out
        out.append(Passing(alert_id, t, t))
        return True, _bounded(out)
    mine.first, mine.last = min(mine.first, t), max(mine.last, t)  # a retry of the claimer
    return True, out


def extended(passings: list[Passing], t: float, window_s: float) -> list[Passing]:
    """Pure core of `extend_sighting`: the passing a matched track still in view belongs to
    reaches `t`."""
    out = [Passing(**asdict(p)) for p in passings]
    mine = _find(out, t, window_s)
    if mine is not None:
        mine.first, mine.last = min(mine.first, t), max(mine.last, t)
    return out


def _bounded(passings: list[Passing]) -> list[Passing]:
    newest = max(p.last for p in passings)
    kept = [p for p in passings if p.last >= newest - _KEEP.total_seconds()]
    return sorted(kept, key=lambda p: p.last)[-MAX_PASSINGS:]


def claim_sighting(
    tables: Tables,
    deployment_id: str,
    camera_id: str,
    subject_id: str,
    alert_id: str,
    captured_at: datetime,
    window_s: int,
) -> bool:
    """True: raise `alert_id` (a new passing, or a retry of the batch that claimed it)."""
    t = captured_at.timestamp()
    return _update(tables, camera_key(deployment_id, camera_id), subject_id,
                   lambda ps: place(ps, alert_id, t, window_s))


def extend_sighting(tables: Tables, deployment_id: str, camera_id: str, subject_id: str,
                    seen: datetime, window_s: int) -> None:
    """A matched passing seen again (its track continued): its span reaches `seen`, so a later
    batch of the same passing continues its alert."""
    t = seen.timestamp()
    _update(tables, camera_key(deployment_id, camera_id), subject_id,
            lambda ps: (False, extended(ps, t, window_s)))


def _update(tables: Tables, key: str, subject_id: str, change) -> bool:  # type: ignore[no-untyped-def]
    S = tables.Sighting
    for _ in range(_ATTEMPTS):
        try:
            item = S.get(key, subject_id, consistent_read=True)
            before = [Passing(**p) for p in json.loads(item.passings)]
        except S.DoesNotExist:
            item, before = S(key, subject_id), []
        result, after = change(before)
        if after == before:
            return result
        item.passings = json.dumps([asdict(p) for p in after])
        item.expires_at = datetime.fromtimestamp(max(p.last for p in after), UTC) + _KEEP
        try:
            item.save()  # conditioned on the version read
            return result
        except PutError as exc:
            if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
                raise
    raise RuntimeError(f"sighting {key}/{subject_id}: too many concurrent writers")
