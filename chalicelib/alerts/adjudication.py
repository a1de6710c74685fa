"""An officer's review of an alert, and what came of it (South Wales Police glossary).

alert --adjudicate--> true_alert | false_alert --outcome--> recorded engagement outcome
Each step records who and when; an adjudication is final (a correction is a new audit entry by
an operator, not an overwrite), which the conditional updates enforce.
"""

from __future__ import annotations

from typing import Any, Literal

from pynamodb.exceptions import UpdateError

from chalicelib.ops import audit, lookalikes
from chalicelib.ops.deployments import get_deployment
from chalicelib.ops.errors import NotFound
from chalicelib.ops.watchlists import LifecycleError
from chalicelib.store.tables import Tables, utcnow

Decision = Literal["true_alert", "false_alert"]
OUTCOMES = ("not_engaged", "engaged_no_action", "engaged_released", "arrested",
            "other_action")


def get_alert(tables: Tables, alert_id: str) -> Any:
    try:
        return tables.Alert.get(alert_id)
    except tables.Alert.DoesNotExist:
        raise NotFound(f"alert {alert_id} not found") from None


def adjudicate(tables: Tables, alert_id: str, decision: Decision, officer: str,
               note: str | None = None) -> Any:
    alert = get_alert(tables, alert_id)
    A = tables.Alert
    try:
        alert.update(
            actions=[A.status.set(decision), A.adjudicated_by.set(officer),
                     A.adjudicated_at.set(utcnow()),
                     *([A.adjudication_note.set(note)] if note else [])],
            condition=A.status == "alert",
        )
    except UpdateError as exc:
        if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
            raise LifecycleError(f"alert {alert_id} was already adjudicated") from None
        raise
    audit.record(tables, alert.deployment_id, officer, "alert.adjudicated", alert_id,
                 decision=decision, score=float(alert.score))
    if decision == "false_alert":
        # Not this person: the same look-alike passing again is flagged, not alerted anew.
        lookalikes.remember(tables, alert, officer, utcnow())
    elif alert.lookalike_of:
        # Flagged as the look-alike but it was the subject: that memory misleads, drop it.
        lookalikes.forget(tables, get_deployment(tables, alert.deployment_id), utcnow(),
                          officer, alert_ids=[alert.lookalike_of],
                          reason=f"{alert_id}, flagged as its look-alike, adjudicated true")
    return alert


def record_outcome(tables: Tables, alert_id: str, outcome: str, officer: str) -> Any:
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
    alert = get_alert(tables, alert_id)
    if alert.status == "alert":
        raise LifecycleError("adjudicate the alert (true or false) before recording an outcome")
    if alert.status == "false_alert" and outcome != "not_engaged":
        # Engaging someone after ruling the alert false is a matter for a new alert, not this one.
        raise LifecycleError("a false alert can only have the outcome not_engaged")
    A = tables.Alert
    try:
        alert.update(actions=[A.outcome.set(outcome), A.outcome_by.set(officer),
                              A.outcome_at.set(utcnow())],
                     condition=A.outcome.does_not_exist())
    except UpdateError as exc:
        if getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException":
            raise LifecycleError(f"alert {alert_id} already has an outcome") from None
        raise
    audit.record(tables, alert.deployment_id, officer, "alert.outcome", alert_id, outcome=outcome)
    return alert


def alert_view(alert: Any) -> dict[str, Any]:
    """What the API shows of an alert (no biometric data beyond the matched subject's name)."""
    def iso(v: Any) -> str | None:
        return v.isoformat() if v else None

    return {
        "alert_id": alert.alert_id, "deployment_id": alert.deployment_id,
        "camera_id": alert.camera_id, "watchlist_id": alert.watchlist_id,
        "subject_id": alert.subject_id, "subject": alert.display_name,
        "score": float(alert.score), "threshold": float(alert.threshold),
        "target_fpir": float(alert.target_fpir) if alert.target_fpir is not None else None,
        "model_id": alert.model_id, "captured_at": iso(alert.captured_at),
        "created_at": iso(alert.created_at), "notified_at": iso(alert.notified_at),
        "track_faces": int(alert.track_faces or 1), "status": alert.status,
        "adjudicated_by": alert.adjudicated_by, "adjudicated_at": iso(alert.adjudicated_at),
        "adjudication_note": alert.adjudication_note, "outcome": alert.outcome,
        "outcome_by": alert.outcome_by, "outcome_at": iso(alert.outcome_at),
        "crop_deleted_at": iso(alert.crop_deleted_at),
        # Set: the look-alike of that alert, already adjudicated false; shown, not pushed.
        "lookalike_of": alert.lookalike_of,
    }
