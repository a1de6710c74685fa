"""Retention sweeps, run on a schedule. moto never purges TTL items and AWS purges them late,
so nothing here relies on TTL: each rule is enforced by an explicit delete."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from chalicelib.alerts.lookalikes import forget
from chalicelib.ops import audit
from chalicelib.ops.deployments import end_deployment
from chalicelib.ops.watchlists import UNBOUND, destroy_unbound_watchlist, destroy_watchlist
from chalicelib.settings import Settings
from chalicelib.store.tables import Tables

ACTOR = "retention-sweep"
UNBOUND_AFTER = timedelta(hours=Settings.watchlist_unbound_hours)


def sweep(tables: Tables, s3: Any, evidence_bucket: str, now: datetime,
          watchlist_grace: timedelta,
          unbound_after: timedelta = UNBOUND_AFTER) -> dict[str, int]:
    done = {"deployments_ended": 0, "watchlists_destroyed": 0, "subjects_destroyed": 0,
            "unbound_watchlists_destroyed": 0, "crops_deleted": 0, "sightings_deleted": 0,
            "track_states_deleted": 0, "lookalikes_forgotten": 0}
    for dep in tables.Deployment.scan():
        # Look-alikes ruled out are remembered until their alert's crop expires or the
        # deployment ends (end_deployment drops them; this catches a race with it).
        done["lookalikes_forgotten"] += forget(tables, dep, now, ACTOR)
        end = dep.ended_at or dep.ends_at
        if end is None or end > now:
            continue
        if dep.status != "ended":
            end_deployment(tables, dep.deployment_id, ACTOR)
            done["deployments_ended"] += 1
        if end + watchlist_grace <= now and dep.watchlist_id:
            wl = tables.Watchlist.get(dep.watchlist_id)
            if wl.status != "destroyed":
                done["subjects_destroyed"] += destroy_watchlist(
                    tables, s3, evidence_bucket, dep.watchlist_id, ACTOR)
                done["watchlists_destroyed"] += 1
    W = tables.Watchlist
    # Lists no deployment took: built for a deployment that never happened, kept no longer.
    stale = W.scan(W.deployment_id.does_not_exist() & W.status.is_in(*UNBOUND)
                   & (W.created_at <= now - unbound_after))
    for wl in stale:
        n = destroy_unbound_watchlist(tables, s3, evidence_bucket, wl.watchlist_id, ACTOR)
        if n is not None:  # None: a deployment bound it since the scan
            done["subjects_destroyed"] += n
            done["unbound_watchlists_destroyed"] += 1
    A = tables.Alert
    for alert in A.scan(A.expires_at <= now):
        if alert.crop_deleted_at is not None:
            continue
        s3.delete_object(Bucket=evidence_bucket, Key=alert.crop_key)
        alert.update(actions=[A.crop_deleted_at.set(now)])
        audit.record(tables, alert.deployment_id, ACTOR, "crop.deleted", alert.alert_id)
        done["crops_deleted"] += 1
    S = tables.Sighting
    for sighting in S.scan(S.expires_at <= now):
        sighting.delete()
        done["sightings_deleted"] += 1
    CT = tables.CameraTracks
    for state in CT.scan(CT.expires_at <= now):
        # Geometry of passers-by, kept a minute at most (the worker already ignores it).
        state.delete()
        done["track_states_deleted"] += 1
    return done
