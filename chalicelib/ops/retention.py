"""Retention sweeps, run on a schedule. moto never purges TTL items and AWS purges them late,
so nothing here relies on TTL: each rule is enforced by an explicit delete.

Each item is done on its own: one that fails (a denied delete, a throttle) is counted under
`failures`, logged with its id, and left for the next run, and everything after it is still
done. Items are found through the sparse `sweep-due` index of each table (store/tables.py):
open deployments, unbound lists, alerts whose crop is kept, sightings and track states, each
queried for what is due, so a run reads what is open or due, never months of history. Frame
batches past their hold (a dead-lettered batch's frames, kept for redrive) are found by listing
frames/, which holds only batches in flight or dead-lettered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from pynamodb.exceptions import DeleteError, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib import monitoring
from chalicelib.ops import audit
from chalicelib.ops.deployments import end_deployment
from chalicelib.ops.lookalikes import forget
from chalicelib.ops.watchlists import destroy_unbound_watchlist, destroy_watchlist
from chalicelib.settings import Settings
from chalicelib.store import layout
from chalicelib.store.tables import Tables, connection_of

ACTOR = "retention-sweep"
UNBOUND_AFTER = timedelta(hours=Settings.watchlist_unbound_hours)
# The metric the operators are alarmed on: items a run could not do.
METRIC_NAMESPACE, FAILURES_METRIC, METRIC_SERVICE = monitoring.RETENTION
log = logging.getLogger("lfr.retention")


class _Run:
    def __init__(self) -> None:
        self.done = {"deployments_ended": 0, "watchlists_destroyed": 0, "subjects_destroyed": 0,
                     "unbound_watchlists_destroyed": 0, "crops_deleted": 0,
                     "sightings_deleted": 0, "track_states_deleted": 0,
                     "lookalikes_forgotten": 0, "dead_letter_frames_deleted": 0,
                     "failures": 0}

    def attempt(self, what: str, item: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:  # one item's failure stops nothing else
            self.done["failures"] += 1
            # Ids and the error's type only: never what the item holds.
            log.warning("retention item failed, left for the next run: %s %s (%s)",
                        what, item, type(exc).__name__)
            return None

    def each(self, what: str, items: Iterable[Any], key: Callable[[Any], str],
             fn: Callable[[Any], Any]) -> None:
        """`fn` on every item, each on its own; a failed listing counts as one failure."""
        self.attempt(f"listing {what}", "-", lambda: [
            self.attempt(what, key(item), lambda item=item: fn(item)) for item in items])


def sweep(tables: Tables, s3: Any, evidence_bucket: str, now: datetime,
          watchlist_grace: timedelta,
          unbound_after: timedelta = UNBOUND_AFTER,
          frames: tuple[str, timedelta] | None = None) -> dict[str, int]:
    """`frames`: the frames bucket and how long a batch's frames may wait there (a dead-
    lettered batch's, for redrive: Settings.dead_letter_frames_hours)."""
    run = _Run()
    if frames is not None:
        _expire_frames(run, s3, *frames, now)
    _close_deployments(run, tables, s3, evidence_bucket, now, watchlist_grace)
    _destroy_unbound_watchlists(run, tables, s3, evidence_bucket, now, unbound_after)
    _delete_expired_crops(run, tables, s3, evidence_bucket, now)
    _delete_stale_sightings(run, tables, now)
    _delete_expired_track_states(run, tables, now)
    return run.done


def _close_deployments(run: _Run, tables: Tables, s3: Any, evidence_bucket: str,
                       now: datetime, watchlist_grace: timedelta) -> None:
    """Open deployments: look-alikes forgotten, ended past their window, and their watchlist
    destroyed once the grace has passed."""
    D, W, done = tables.Deployment, tables.Watchlist, run.done

    def deployment(dep: Any) -> None:
        # Look-alikes ruled out are remembered until their alert's crop expires or the
        # deployment ends (end_deployment drops them; this catches a race with it).
        n = run.attempt("lookalikes", dep.deployment_id, lambda: forget(tables, dep, now, ACTOR))
        done["lookalikes_forgotten"] += n or 0
        end = dep.ended_at or dep.ends_at
        if end is None or end > now:
            return
        if dep.status != "ended":
            end_deployment(tables, dep.deployment_id, ACTOR)
            done["deployments_ended"] += 1
        if end + watchlist_grace > now:
            return
        if dep.watchlist_id and W.get(dep.watchlist_id).status != "destroyed":
            done["subjects_destroyed"] += destroy_watchlist(
                tables, s3, evidence_bucket, dep.watchlist_id, ACTOR)
            done["watchlists_destroyed"] += 1
        dep.update(actions=[D.sweep.remove()])  # closed: nothing left to do with it

    run.each("deployment", D.due.query("open"), lambda d: d.deployment_id, deployment)


def _destroy_unbound_watchlists(run: _Run, tables: Tables, s3: Any, evidence_bucket: str,
                                now: datetime, unbound_after: timedelta) -> None:
    """Lists no deployment took: built for a deployment that never happened, kept no longer."""
    W, done = tables.Watchlist, run.done

    def unbound(wl: Any) -> None:
        n = destroy_unbound_watchlist(tables, s3, evidence_bucket, wl.watchlist_id, ACTOR)
        if n is not None:  # None: a deployment bound it since the query
            done["subjects_destroyed"] += n
            done["unbound_watchlists_destroyed"] += 1

    run.each("unbound watchlist", W.due.query("unbound", W.created_at <= now - unbound_after),
             lambda w: w.watchlist_id, unbound)


def _delete_expired_crops(run: _Run, tables: Tables, s3: Any, evidence_bucket: str,
                          now: datetime) -> None:
    A = tables.Alert

    def crop(alert: Any) -> None:
        s3.delete_object(Bucket=evidence_bucket, Key=alert.crop_key)
        # Marked and audited together: a failure between them would lose the entry.
        with TransactWrite(connection=connection_of(A)) as tw:
            tw.update(alert, actions=[A.crop_deleted_at.set(now), A.sweep.remove()])
            tw.save(audit.entry(tables, alert.deployment_id, ACTOR, "crop.deleted",
                                alert.alert_id),
                    condition=tables.Audit.entry.does_not_exist())
        run.done["crops_deleted"] += 1

    run.each("crop", A.due.query("crop", A.expires_at <= now), lambda a: a.alert_id, crop)


def _delete_stale_sightings(run: _Run, tables: Tables, now: datetime) -> None:
    S = tables.Sighting

    def sighting(item: Any) -> None:
        try:
            item.delete()  # on condition that it is as read: not renewed meanwhile
        except DeleteError as exc:
            if not _conditional(exc):
                raise
            return
        run.done["sightings_deleted"] += 1

    run.each("sighting", S.due.query("due", S.expires_at <= now),
             lambda s: f"{s.camera_key}/{s.subject_id}", sighting)


def _delete_expired_track_states(run: _Run, tables: Tables, now: datetime) -> None:
    CT = tables.CameraTracks

    def track_state(item: Any) -> None:
        # Geometry of passers-by, kept a minute at most (the worker already ignores it).
        try:
            CT(item.camera_key).delete(condition=CT.expires_at <= now)  # not a fresh one
        except DeleteError as exc:
            if not _conditional(exc):
                raise
            return
        run.done["track_states_deleted"] += 1

    run.each("track state", CT.due.query("due", CT.expires_at <= now),
             lambda t: t.camera_key, track_state)


def _expire_frames(run: _Run, s3: Any, bucket: str, hold: timedelta, now: datetime) -> None:
    """Frame batches older than `hold`. A batch is under frames/ for a second when all is well:
    what is older was dead-lettered (kept for redrive until now) or never processed. Listing
    frames/ reads only those, not history."""
    def old_objects() -> Iterable[dict[str, Any]]:
        for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=layout.FRAMES_PREFIX):
            yield from (o for o in page.get("Contents", []) if o["LastModified"] + hold <= now)

    def delete(obj: dict[str, Any]) -> None:
        s3.delete_object(Bucket=bucket, Key=obj["Key"])
        run.done["dead_letter_frames_deleted"] += 1

    run.each("frames past their hold", old_objects(), lambda o: o["Key"], delete)


def _conditional(exc: DeleteError | TransactWriteError) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


def report(done: dict[str, int]) -> None:
    """The run's failures as a metric (embedded metric format: a log line CloudWatch reads),
    zero included, so the alarm sees every run."""
    # single_metric: one record of its own, not the process's shared metric set.
    with single_metric(name=FAILURES_METRIC, unit=MetricUnit.Count, value=done["failures"],
                       namespace=METRIC_NAMESPACE) as metric:
        metric.add_dimension(name="service", value=METRIC_SERVICE)
