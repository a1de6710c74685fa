"""Deployments: one place, one time window, its cameras, one authorised watchlist, a target
false alert rate and the threshold calibrated for it; and the officer devices registered on it."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import PutError, UpdateError

from chalicelib.ops import audit
from chalicelib.ops.errors import NotFound
from chalicelib.ops.watchlists import LifecycleError, get_watchlist
from chalicelib.store import layout
from chalicelib.store.tables import Tables, utcnow

PLATFORMS = ("gcm", "apns")

__all__ = ["NotFound", "PLATFORMS", "create_deployment", "create_deployment_checked",
           "end_deployment", "get_deployment", "register_device", "calibrated_threshold",
           "in_window", "load_differentials", "operating_points", "template_sizes"]


def calibrated_threshold(model_id: str, target_fpir: float,
                         watchlist: int | dict[int, int]) -> float:
    """The threshold that keeps false alerts at most at the target (its 95 % bound) for this
    recognizer and watchlist: its size, or {reference images per template: subjects}."""
    from chalicelib.matching.calibration import load_stats, threshold_for

    gallery = watchlist if isinstance(watchlist, dict) else max(1, watchlist)
    return float(threshold_for(load_stats(model_id), target_fpir, gallery or {1: 1}))


def template_sizes(tables: Tables, watchlist_id: str) -> dict[int, int]:
    """{reference images in a template: subjects}: the impostor model differs by template size
    (chalicelib/matching/calibration.py)."""
    S = tables.Subject
    mix: dict[int, int] = {}
    for subject in S.query(watchlist_id, attributes_to_get=["n_images"]):
        k = int(subject.n_images or 1)
        mix[k] = mix.get(k, 0) + 1
    return mix


def operating_points(model_id: str, watchlist: dict[int, int], threshold: float,
                     target_fpir: float | None) -> dict[str, Any]:
    """What the deployment's threshold means at its watchlist, and what the rates police
    compare against would take: thresholds, expected FPIR with its interval, and whether the
    figure was counted on background faces or extrapolated by the fitted tail."""
    from chalicelib.matching.calibration import (
        MIN_COUNTED,
        POLICE_TARGETS,
        as_calibration,
        checked_on_unseen,
        load_stats,
        operating_point,
        unseen_basis,
    )

    stats = load_stats(model_id)
    cal = as_calibration(stats)
    gallery = watchlist or {1: 1}
    lo, hi = cal.fpir_bounds(threshold, gallery)
    counted, total = cal.counted_above(threshold, gallery)
    points = [operating_point(stats, t, gallery) for t in POLICE_TARGETS]
    expected = cal.fpir(threshold, gallery)
    rate = target_fpir if target_fpir is not None else expected  # what the threshold is for
    basis = (f"extrapolated by the fitted tail: {counted} of {total:,} background impostor "
             "scores reach it" if counted < MIN_COUNTED else
             f"counted: {counted} of {total:,} background impostor scores reach it")
    return {
        "threshold": round(threshold, 6),
        "target_fpir": target_fpir,
        "expected_fpir": expected,
        "expected_fpir_95": [lo, hi],
        "background_impostor_scores_at_or_above": [counted, total],
        "extrapolated": counted < MIN_COUNTED,
        # Whether this rate was measured on identities the impostor model never saw (the
        # held-out check), or is the model's alone (issue 22 item 12).
        "checked_on_unseen": checked_on_unseen(rate),
        "says": f"threshold {threshold:.4f} for {rate:.2g}: {basis}; {unseen_basis(rate)}",
        "at_police_rates": [
            {"target_fpir": pt.target_fpir, "threshold": pt.threshold,
             "expected_fpir": pt.expected_fpir, "expected_fpir_95": [pt.fpir_low, pt.fpir_high],
             "extrapolated": pt.extrapolated, "checked_on_unseen": pt.checked_on_unseen,
             "says": pt.describe()} for pt in points],
    }


@dataclass(frozen=True)
class CreatedDeployment:
    deployment_id: str
    threshold: float
    # What the operator should know about the threshold (never a refusal): e.g. it lies where
    # the force's last evaluation found a demographic differential in false positives.
    warnings: list[dict[str, Any]] = field(default_factory=list)
    model_id: str = ""
    template_sizes: dict[int, int] = field(default_factory=dict)  # the watchlist, as counted


def load_differentials(path: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The force's differentials record at `path` (the setting; empty: none), or a warning that
    it could not be read: a broken record must not stop a deployment, nor pass unnoticed."""
    from chalicelib.matching.differentials import load_record

    if not path:
        return None, []
    try:
        return load_record(path), []
    except (OSError, ValueError) as exc:
        return None, [{"kind": "differentials_unreadable",
                       "message": f"the differentials record could not be read ({exc}): "
                                  "demographic differentials were not checked"}]


def create_deployment(*args: Any, **kwargs: Any) -> str:
    """create_deployment_checked, for callers that need only the new deployment's id."""
    return create_deployment_checked(*args, **kwargs).deployment_id


def create_deployment_checked(
    tables: Tables,
    name: str,
    watchlist_id: str,
    cameras: list[str],
    threshold: float | None = None,
    place: str | None = None,
    target_fpir: float | None = None,
    deployment_id: str | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    authorising_officer: str | None = None,
    reason: str | None = None,
    created_by: str = "system",
    require_authorised: bool = True,
    differentials_path: str = "",
) -> CreatedDeployment:
    """Binds an authorised watchlist to a new deployment; derives the threshold from the target
    false positive identification rate unless an explicit threshold is given. With the force's
    differentials record (settings.differentials_path), warns and audits when the threshold lies
    where it found one."""
    deployment_id = deployment_id or f"dep-{uuid.uuid4().hex[:12]}"
    starts_at, ends_at = _checked_request(deployment_id, cameras, starts_at, ends_at)
    wl = get_watchlist(tables, watchlist_id)
    if require_authorised and wl.status != "authorised":
        raise LifecycleError(f"watchlist {watchlist_id} is {wl.status}: it must be authorised "
                             "(and not yet used by another deployment)")
    mix = template_sizes(tables, watchlist_id)
    size = sum(mix.values())
    if threshold is None:
        if target_fpir is None:
            raise ValueError("give a target false positive identification rate (or a threshold)")
        threshold = calibrated_threshold(wl.model_id, target_fpir, mix)
    threshold = round(float(threshold), 6)  # as stored, so warnings speak of the same number
    _put_new(tables, tables.Deployment(
        deployment_id=deployment_id, name=name, watchlist_id=watchlist_id, cameras=cameras,
        place=place, threshold=threshold, target_fpir=target_fpir,
        starts_at=starts_at, ends_at=ends_at, authorising_officer=authorising_officer,
        reason=reason, created_by=created_by, watchlist_size=size,
        sweep="open",  # the retention sweep's until ended and its watchlist destroyed
    ))
    _bind_watchlist(tables, wl, deployment_id)
    audit.record(tables, deployment_id, created_by, "deployment.created", deployment_id,
                 watchlist_id=watchlist_id, watchlist_size=size, threshold=threshold,
                 target_fpir=target_fpir, place=place, authorising_officer=authorising_officer,
                 reason=reason, starts_at=starts_at.isoformat(), ends_at=ends_at.isoformat())
    warnings = _threshold_warnings(tables, deployment_id, created_by, wl.model_id, threshold,
                                   differentials_path)
    return CreatedDeployment(deployment_id, threshold, warnings, wl.model_id, mix)


def _checked_request(deployment_id: str, cameras: list[str], starts_at: datetime | None,
                     ends_at: datetime | None) -> tuple[datetime, datetime]:
    """Refuses bad ids and an empty or backwards window; returns the window (default: from
    now, for 12 hours)."""
    bad = [c for c in [deployment_id, *cameras] if not layout.valid_id(c)]
    if bad:
        raise ValueError(f"invalid ids: {bad}")
    if not cameras:
        raise ValueError("a deployment needs at least one camera")
    starts_at = starts_at or utcnow()
    ends_at = ends_at or starts_at + timedelta(hours=12)
    if ends_at <= starts_at:
        raise ValueError("ends_at must be after starts_at")
    return starts_at, ends_at


def _put_new(tables: Tables, deployment: Any) -> None:
    """Writes the deployment's row; a taken id is refused, never overwritten."""
    try:
        deployment.save(condition=tables.Deployment.deployment_id.does_not_exist())
    except PutError as exc:
        if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
            raise
        raise LifecycleError(f"deployment {deployment.deployment_id} exists already") from None


def _bind_watchlist(tables: Tables, wl: Any, deployment_id: str) -> None:
    """Marks the list active and this deployment's; when the list changed since it was read,
    the new deployment row is deleted again and the creation refused."""
    W = tables.Watchlist
    try:
        # Only the list as it was read: not one destroyed (retention sweep) or bound meanwhile.
        wl.update(actions=[W.deployment_id.set(deployment_id), W.status.set("active"),
                           W.sweep.remove()],
                  condition=W.deployment_id.does_not_exist() & (W.status == wl.status))
    except UpdateError as exc:
        if getattr(exc, "cause_response_code", None) != "ConditionalCheckFailedException":
            raise
        tables.Deployment(deployment_id=deployment_id).delete()
        raise LifecycleError(f"watchlist {wl.watchlist_id} was destroyed or bound to another "
                             "deployment meanwhile") from None


def _threshold_warnings(tables: Tables, deployment_id: str, created_by: str, model_id: str,
                        threshold: float, differentials_path: str) -> list[dict[str, Any]]:
    """What the force's differentials record says about this threshold, each warning audited."""
    from chalicelib.matching.differentials import threshold_warnings

    differentials, warnings = load_differentials(differentials_path)
    warnings += threshold_warnings(differentials, model_id, threshold)
    for w in warnings:
        audit.record(tables, deployment_id, created_by, "deployment.threshold_warning",
                     deployment_id, kind=w["kind"], message=w["message"], threshold=threshold,
                     groups="; ".join(w.get("groups", [])) or None,
                     evaluated_at=(differentials or {}).get("evaluated_at"))
    return warnings


def get_deployment(tables: Tables, deployment_id: str) -> Any:
    try:
        return tables.Deployment.get(deployment_id)
    except tables.Deployment.DoesNotExist:
        raise NotFound(f"deployment {deployment_id} not found") from None


def in_window(deployment: Any, at: datetime) -> bool:
    if deployment.starts_at and at < deployment.starts_at:
        return False
    end = deployment.ended_at or deployment.ends_at
    return not (end and at > end)


def end_deployment(tables: Tables, deployment_id: str, actor: str) -> None:
    dep = get_deployment(tables, deployment_id)
    if dep.status == "ended":
        return
    now = utcnow()
    D = tables.Deployment
    # Its memory of look-alikes ruled out (ops/lookalikes.py) ends with it, in the same write.
    ruled_out = len(dep.lookalikes.as_dict()) if dep.lookalikes is not None else 0
    dep.update(actions=[D.status.set("ended"), D.ended_at.set(min(now, dep.ends_at or now)),
                        D.lookalikes.remove()])
    audit.record(tables, deployment_id, actor, "deployment.ended", deployment_id,
                 lookalikes_forgotten=ruled_out)


_EXISTING = re.compile(r"Endpoint (arn:aws[\w-]*:sns:\S+) already exists")


def _platform_endpoint(sns: Any, platform_app_arn: str, push_token: str) -> str:
    """The phone's endpoint, created once per token. Created without attributes, as SNS
    advises: a second call with the same token then returns the same endpoint, and one that
    finds it with other attributes is told its ARN."""
    try:
        return str(sns.create_platform_endpoint(PlatformApplicationArn=platform_app_arn,
                                                Token=push_token)["EndpointArn"])
    except sns.exceptions.InvalidParameterException as exc:
        found = _EXISTING.search(str(exc))
        if found is None:
            raise
        return found.group(1)


def register_device(
    tables: Tables,
    sns: Any,
    platform_app_arn: str,
    deployment_id: str,
    officer_id: str,
    platform: str,
    push_token: str,
) -> dict[str, str]:
    """Create the SNS platform endpoint for a phone's push token and attach it to a deployment."""
    get_deployment(tables, deployment_id)
    endpoint = _platform_endpoint(sns, platform_app_arn, push_token)
    # A phone handed to the next shift: the endpoint is the phone's, the officer changes.
    sns.set_endpoint_attributes(EndpointArn=endpoint,
                                Attributes={"CustomUserData": officer_id, "Enabled": "true"})
    device_id = "dev-" + endpoint.rsplit("/", 1)[-1][:24]
    tables.Device(
        deployment_id=deployment_id,
        device_id=device_id,
        officer_id=officer_id,
        platform=platform,
        endpoint_arn=endpoint,
    ).save()
    audit.record(tables, deployment_id, officer_id, "device.registered", device_id)
    return {"device_id": device_id, "endpoint_arn": endpoint}
