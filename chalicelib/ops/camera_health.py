"""Each camera of a deployment as live, degraded or dark since a time, from its gateway's
heartbeats (chalicelib/gateway/heartbeat.py); a push to the deployment's officers when one has
been dark too long; and each camera's watching time and lost frames for the record.

Kept in the cameras table, a row per camera of a deployment (store/tables.CameraBase): counts,
times and ids only, nothing about anyone in view. The frames that reached the worker are counted
on the deployment's row, in the worker's own write (ingest/decide.py).

States:
- dark: no heartbeat for three intervals, the gateway stopped, or its source is not delivering
  frames (reconnecting). Since: the last heartbeat, or the last frame captured.
- degraded: reporting and capturing, but since its last report it shed frames or retried
  uploads, or it has a backlog: alerts may come late or not at all.
- live: otherwise.
A camera never heard from is dark since the deployment started.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from chalicelib.ops import audit
from chalicelib.ops.deployments import in_window
from chalicelib.store.tables import Tables

SILENT_AFTER = 3  # heartbeat intervals without a report: dark
COUNTS = ("frames_read", "frames_sent", "frames_shed_total", "batches_sent", "retries",
          "grant_renewals", "reconnects", "watching_s")


def _t(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def fold_heartbeat(entry: dict[str, Any] | None, report: dict[str, Any],
                   now: datetime) -> dict[str, Any]:
    """The camera's entry after one heartbeat. Counts of earlier runs of the gateway (another
    run id) are kept in `totals`, so a restart loses none of them. Pure."""
    entry = dict(entry or {})
    totals = dict(entry.get("totals") or {})
    last = dict(entry.get("report") or {})
    if last and last.get("run_id") != report["run_id"]:  # a new run: bank the old one's counts
        for k in COUNTS:
            totals[k] = totals.get(k, 0) + (last.get(k) or 0)
        last = {}
    if report.get("stopped"):
        state, since = "dark", now
    elif report.get("source_state") != "streaming":
        state = "dark"
        since = _t(report.get("last_capture_at")) or now
    elif (report["frames_shed_total"] > (last.get("frames_shed_total") or 0)
          or report["retries"] > (last.get("retries") or 0) or report["queued_frames"] > 0):
        state, since = "degraded", now
    else:
        state, since = "live", now
    if entry.get("state") == state and entry.get("since"):
        since = _t(entry["since"]) or since  # the same state goes on: keep when it began
    return {**entry, "report": report, "totals": totals, "state": state,
            "since": _iso(since), "last_heartbeat_at": _iso(now)}


def camera_state(entry: dict[str, Any] | None, now: datetime, heartbeat_s: float,
                 dark_from: datetime) -> tuple[str, datetime]:
    """(state, since) as of `now`: a camera that stopped reporting is dark since its last
    report, whatever it said then. Pure."""
    if not entry or not entry.get("last_heartbeat_at"):
        return "dark", (_t(entry.get("since")) if entry and entry.get("since") else dark_from)
    last = _t(entry["last_heartbeat_at"])
    assert last is not None
    interval = float((entry.get("report") or {}).get("interval_s") or heartbeat_s)
    if now - last > timedelta(seconds=SILENT_AFTER * interval) and entry.get("state") != "dark":
        return "dark", last
    return entry["state"], _t(entry["since"]) or last


def camera_totals(entry: dict[str, Any] | None) -> dict[str, float]:
    """Counts over every run of the camera's gateway."""
    entry = entry or {}
    totals, last = entry.get("totals") or {}, entry.get("report") or {}
    return {k: (totals.get(k) or 0) + (last.get(k) or 0) for k in COUNTS}


def _map(attr: Any) -> dict[str, Any]:
    return attr.as_dict() if attr else {}


def _rows(tables: Tables, deployment_id: str) -> dict[str, Any]:
    return {c.camera_id: c for c in tables.Camera.query(deployment_id, consistent_read=True)}


def _entry(row: Any) -> dict[str, Any] | None:
    return json.loads(row.health) if row is not None and row.health else None


def record_heartbeat(tables: Tables, dep: Any, camera_id: str, report: dict[str, Any],
                     now: datetime) -> dict[str, Any]:
    """Folds one heartbeat into the camera's row (one gateway per camera reports in order)."""
    C = tables.Camera
    try:
        row = C.get(dep.deployment_id, camera_id, consistent_read=True)
    except C.DoesNotExist:
        row = None
    entry = fold_heartbeat(_entry(row), report, now)
    C(dep.deployment_id, camera_id).update(actions=[
        C.health.set(json.dumps(entry, sort_keys=True)), C.updated_at.set(now)])
    return entry


def cameras_view(tables: Tables, dep: Any, now: datetime,
                 heartbeat_s: float) -> list[dict[str, Any]]:
    """Each camera of the deployment: state and since, its last report's counts, and its
    totals over the day. What the API and the console show."""
    rows, received = _rows(tables, dep.deployment_id), _map(dep.camera_frames)
    out = []
    for cam in dep.cameras or []:
        entry = _entry(rows.get(cam))
        state, since = camera_state(entry, now, heartbeat_s, dep.starts_at or dep.created_at)
        totals = camera_totals(entry)
        captured = int(totals["frames_read"])
        reached = int(received.get(cam, 0))
        last = (entry or {}).get("report") or {}
        out.append({
            "camera_id": cam, "state": state, "since": since.isoformat(),
            "last_heartbeat_at": (entry or {}).get("last_heartbeat_at"),
            "last_capture_at": last.get("last_capture_at"),
            "uplink_ms": last.get("uplink_ms"), "queued_frames": last.get("queued_frames", 0),
            "frames_shed": last.get("frames_shed", {}),
            "watching_s": round(float(totals["watching_s"]), 1),
            "frames_captured": captured, "frames_reached_worker": reached,
            # Of the frames captured, the share the worker never looked at: the denominator
            # that "people seen" needs.
            "frames_lost_share": (round(max(0, captured - reached) / captured, 4)
                                  if captured else None),
            **{k: int(totals[k]) for k in ("retries", "grant_renewals", "reconnects")},
        })
    return out


def camera_record(tables: Tables, dep: Any) -> list[dict[str, Any]]:
    """For the transparency record: each camera's watching time, frames captured, and the
    share of them that never reached the worker (shed on the van or lost on the way)."""
    return [{k: c[k] for k in ("camera_id", "watching_s", "frames_captured",
                               "frames_reached_worker", "frames_lost_share")}
            for c in cameras_view(tables, dep, dep.created_at, 1.0)]


def push_dark_cameras(tables: Tables, sns: Any, now: datetime, heartbeat_s: float,
                      dark_push_s: float) -> int:
    """Pushes once per dark spell to the officers' phones of each running deployment whose
    camera has been dark at least `dark_push_s`; audited. Returns the number of pushes."""
    pushes = 0
    # Deployments not yet closed, through the sweep's sparse index: never the history.
    for dep in tables.Deployment.due.query("open"):
        if dep.status != "active" or not in_window(dep, now):
            continue
        rows = _rows(tables, dep.deployment_id)
        for cam in dep.cameras or []:
            row = rows.get(cam)
            state, since = camera_state(_entry(row), now, heartbeat_s,
                                        dep.starts_at or dep.created_at)
            if state != "dark" or now - since < timedelta(seconds=dark_push_s):
                continue
            if row is not None and row.dark_pushed_for == since.isoformat():
                continue  # this spell was pushed already
            devices = list(tables.Device.query(dep.deployment_id))
            for d in devices:
                sns.publish(TargetArn=d.endpoint_arn, MessageStructure="json",
                            Message=json.dumps(dark_payload(dep.deployment_id, cam, since)))
            pushes += len(devices)
            # Recorded after the pushes: a crash in between pushes the spell again (twice is
            # better than never for a camera nobody is watching).
            C = tables.Camera
            C(dep.deployment_id, cam).update(actions=[C.dark_pushed_for.set(since.isoformat())])
            audit.record(tables, dep.deployment_id, "camera-watch", "camera.dark", cam,
                         dark_since=since.isoformat(), pushed=len(devices))
    return pushes


def dark_payload(deployment_id: str, camera_id: str, since: datetime) -> dict[str, Any]:
    data = {"type": "camera_dark", "deployment_id": deployment_id, "camera_id": camera_id,
            "dark_since": since.isoformat()}
    title = f"Camera {camera_id} is dark"
    body = f"No frames since {since:%H:%M:%S} UTC. Nobody is being watched by it."
    return {"default": f"{title}. {body}",
            "GCM": json.dumps({"notification": {"title": title, "body": body}, "data": data}),
            "APNS": json.dumps({"aps": {"alert": {"title": title, "body": body}}, "lfr": data})}
