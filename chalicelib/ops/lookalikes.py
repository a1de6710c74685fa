""""Not this person": a passer-by an officer has ruled out is not alerted on again as new.

When an officer adjudicates an alert false, the deployment remembers that watchlist subject S
was falsely matched at score s (alert A). A later match of S anywhere in the same deployment
(any of its cameras: one place, one day, and the same stranger walks past the next van too)
that scores no more than s + margin is raised as a look-alike alert: its row and crop are kept
as for any alert, officers see it in the console flagged with A, the record counts it, but no
one's phone is pushed to go and stop the person already cleared. A clearly higher score may be
the real S, and alerts as usual; so does any match once the memory has expired.

What is remembered is what alert A already keeps (its id, subject id and score), for no longer:
until A's crop expires (crop_retention_days) or the deployment ends, whichever is first. No
embedding, crop or description of the look-alike is kept: the same face is recognised as "the
one ruled out" only through S's template and the score (docs/privacy.md). end_deployment and
the retention sweep delete it; the worker ignores an expired entry before then.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pynamodb.exceptions import UpdateError

from chalicelib.ops import audit
from chalicelib.ops.deployments import get_deployment
from chalicelib.store.tables import Tables


@dataclass(frozen=True)
class RuledOut:
    """A false alert of the deployment: subject S matched a look-alike at `score`."""

    alert_id: str
    subject_id: str
    score: float
    until: float  # epoch seconds: the alert's crop expiry or the deployment's end


def ruled_out(held: Any) -> list[RuledOut]:
    """The entries of a deployment row's `lookalikes` map (None or a MapAttribute)."""
    raw: Mapping[str, Any] = held.as_dict() if hasattr(held, "as_dict") else (held or {})
    return [RuledOut(alert_id, str(e["subject_id"]), float(e["score"]), float(e["until"]))
            for alert_id, e in raw.items()]


def resembles(ruled: list[RuledOut], subject_id: str, score: float, now: float,
              margin: float) -> str | None:
    """The false alert this match is taken for the look-alike of, or None: a new alert.
    A lower score than the one ruled out is flagged too: it is weaker evidence still."""
    near = [r for r in ruled
            if r.subject_id == subject_id and r.until > now and score <= r.score + margin]
    return max(near, key=lambda r: r.score).alert_id if near else None


def remember(tables: Tables, alert: Any, officer: str, now: datetime) -> bool:
    """After an officer adjudicated `alert` false. False when there is nothing to remember
    for: the deployment has ended, or the alert's retention is over."""
    dep = get_deployment(tables, alert.deployment_id)
    end = dep.ended_at or dep.ends_at
    until = min(alert.expires_at, end) if end else alert.expires_at
    if dep.status != "active" or until <= now:
        return False
    D = tables.Deployment
    entry = {"subject_id": alert.subject_id, "score": float(alert.score),
             "until": until.timestamp()}
    try:
        # The map first (rows from before it existed), then this alert's entry; only while the
        # deployment runs, so an end in between leaves nothing behind.
        dep.update(actions=[D.lookalikes.set(D.lookalikes | {})], condition=D.status == "active")
        dep.update(actions=[D.lookalikes[alert.alert_id].set(entry)],
                   condition=D.status == "active")
    except UpdateError as exc:
        if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
            raise
        return False
    audit.record(tables, alert.deployment_id, officer, "lookalike.remembered", alert.alert_id,
                 until=until.isoformat())
    return True


def forget(tables: Tables, dep: Any, now: datetime, actor: str,
           alert_ids: list[str] | None = None, reason: str = "") -> int:
    """Deletes the entries named, or else those expired (all, once the deployment has ended),
    with an audit entry each; returns how many."""
    ended = dep.status == "ended"
    gone = [r.alert_id for r in ruled_out(dep.lookalikes)
            if (r.alert_id in alert_ids if alert_ids is not None
                else ended or r.until <= now.timestamp())]
    if not gone:
        return 0
    D = tables.Deployment
    dep.update(actions=[D.lookalikes[a].remove() for a in gone])
    reason = reason or ("deployment ended" if ended else "expired")
    for alert_id in gone:
        audit.record(tables, dep.deployment_id, actor, "lookalike.forgotten", alert_id,
                     reason=reason)
    return len(gone)
