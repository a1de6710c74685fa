"""A camera's state from its gateway's heartbeats (ops/camera_health.py): live, degraded or dark
since when, counts kept across restarts of the gateway. Pure core."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.ops.camera_health import camera_state, camera_totals, fold_heartbeat

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def beat(run: str = "r1", **kw: Any) -> dict[str, Any]:
    report = {"run_id": run, "interval_s": 5.0, "stopped": False, "frames_read": 100,
              "frames_sent": 100, "frames_shed": {}, "frames_shed_total": 0,
              "batches_sent": 50, "retries": 0, "grant_renewals": 0, "reconnects": 0,
              "source_state": "streaming", "last_capture_at": T0.isoformat(),
              "watching_s": 20.0, "uplink_ms": 80.0, "queued_frames": 0}
    return {**report, **kw}


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def test_live_then_degraded_while_shedding_then_live_again_each_since_its_start() -> None:
    e = fold_heartbeat(None, beat(), at(0))
    e = fold_heartbeat(e, beat(frames_read=125, frames_sent=125), at(5))
    assert (e["state"], e["since"]) == ("live", at(0).isoformat())
    e = fold_heartbeat(e, beat(frames_read=150, frames_shed={"expired": 4},
                               frames_shed_total=4, retries=9), at(10))
    e = fold_heartbeat(e, beat(frames_read=175, frames_shed_total=4, retries=12), at(15))
    assert (e["state"], e["since"]) == ("degraded", at(10).isoformat())
    e = fold_heartbeat(e, beat(frames_read=200, frames_shed_total=4, retries=12), at(20))
    assert (e["state"], e["since"]) == ("live", at(20).isoformat())


def test_a_source_that_stopped_delivering_is_dark_since_its_last_frame() -> None:
    e = fold_heartbeat(None, beat(), at(0))
    e = fold_heartbeat(e, beat(source_state="reconnecting", last_capture_at=at(3).isoformat()),
                       at(5))
    assert camera_state(e, at(6), 5.0, T0) == ("dark", at(3))


def test_a_gateway_that_went_silent_is_dark_since_its_last_report() -> None:
    e = fold_heartbeat(None, beat(), at(0))
    assert camera_state(e, at(15), 5.0, T0) == ("live", at(0))  # three intervals: not yet
    assert camera_state(e, at(15.1), 5.0, T0) == ("dark", at(0))


def test_a_camera_never_heard_from_is_dark_since_the_deployment_began() -> None:
    assert camera_state(None, at(60), 5.0, T0) == ("dark", T0)


def test_counts_of_earlier_runs_are_kept_when_the_gateway_restarts() -> None:
    e = fold_heartbeat(None, beat("r1", frames_read=100, watching_s=20.0), at(0))
    e = fold_heartbeat(e, beat("r1", frames_read=150, watching_s=30.0, stopped=True), at(10))
    assert e["state"] == "dark"
    e = fold_heartbeat(e, beat("r2", frames_read=10, watching_s=2.0, reconnects=0), at(30))
    totals = camera_totals(e)
    assert totals["frames_read"] == 160 and totals["watching_s"] == 32.0
    assert e["state"] == "live"
