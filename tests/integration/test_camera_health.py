"""Camera health through the API and the dark-camera push (issue 21, item 6), on moto server:
a camera reports only for itself and only counts; officers see each camera live or dark since
when; a camera dark for camera_dark_push_s during a running deployment is pushed to the
officers' phones once per dark spell, and audited."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from chalicelib.ops.camera_health import push_dark_cameras
from chalicelib.store.tables import utcnow
from tests.integration.conftest import demo_person


def _beat(run: str = "run-1", **kw: Any) -> dict[str, Any]:
    now = utcnow().isoformat()
    return {"run_id": run, "started_at": now, "interval_s": 5.0, "stopped": False,
            "frames_read": 50, "frames_sent": 48, "frames_shed": {"expired": 2},
            "batches_sent": 24, "retries": 3, "grant_renewals": 1, "reconnects": 0,
            "source_state": "streaming", "last_capture_at": now, "watching_s": 10.0,
            "uplink_ms": 120.0, "queued_frames": 0, **kw}


def test_cameras_report_for_themselves_and_officers_see_each_state(scenario_factory: Any,
                                                                   api: Any) -> None:
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]},
                          cameras=("cam-1", "cam-2"))
    dep = sc.deployment_id
    cam1 = api.token("cam-1", ["camera"], camera=f"{dep}/cam-1")
    path = f"/deployments/{dep}/cameras/cam-1/heartbeat"
    assert api.ok("POST", path, cam1, _beat())["state"] == "degraded"  # it shed and retried
    assert api.ok("POST", path, cam1, _beat(frames_read=60))["state"] == "live"
    # Another camera, an officer, an unknown field, a negative count: refused, and why.
    cam2 = api.token("cam-2", ["camera"], camera=f"{dep}/cam-2")
    assert api.call("POST", path, cam2, _beat()).status_code == 403
    officer = api.token("officer-1", ["officer"], deployments=[dep])
    assert api.call("POST", path, officer, _beat()).status_code == 403
    bad = api.call("POST", path, cam1, _beat(face_crop="..."))
    assert bad.status_code == 400 and b"face_crop" in bad.body
    bad = api.call("POST", path, cam1, _beat(frames_shed={"expired": -1}))
    assert bad.status_code == 400
    bad = api.call("POST", path, cam1, _beat(frames_shed={"a stranger's name": 1}))
    assert bad.status_code == 400

    cams = {c["camera_id"]: c for c in api.ok("GET", f"/deployments/{dep}/cameras", officer)}
    assert cams["cam-1"]["state"] == "live" and cams["cam-1"]["frames_captured"] == 60
    assert cams["cam-1"]["retries"] == 3 and cams["cam-1"]["grant_renewals"] == 1
    assert cams["cam-2"]["state"] == "dark"  # never heard from: dark since the start
    other = api.token("officer-2", ["officer"], deployments=["dep-other"])
    assert api.call("GET", f"/deployments/{dep}/cameras", other).status_code == 403


def test_a_dark_camera_is_pushed_once_per_spell_and_audited(scenario_factory: Any, api: Any,
                                                            rt: Any) -> None:
    sc = scenario_factory({"Cory Gardner": [demo_person("Cory_Gardner", 1)]}, devices=2,
                          cameras=("cam-1", "cam-2"))
    dep = sc.deployment_id
    cam1 = api.token("cam-1", ["camera"], camera=f"{dep}/cam-1")
    api.ok("POST", f"/deployments/{dep}/cameras/cam-1/heartbeat", cam1, _beat(retries=0,
           frames_shed={}))
    sns, push_s = rt.client("sns"), 120.0

    def dark_pushes() -> list[Any]:
        return [p for p in sc.pushes() if p.data.get("type") == "camera_dark"]

    def check(after_s: float) -> int:
        """New dark-camera pushes to this deployment's phones (other tests' deployments may
        be dark too)."""
        before = len(dark_pushes())
        push_dark_cameras(rt.tables, sns, utcnow() + timedelta(seconds=after_s), 5.0, push_s)
        return len(dark_pushes()) - before

    assert check(0) == 0  # cam-2 dark, but not for long enough; cam-1 live
    assert check(push_s + 5) == 4  # both dark by then (cam-1 went silent): 2 phones each
    assert check(push_s + 60) == 0  # the same spells: no second push
    assert sorted(p.data["camera_id"] for p in dark_pushes()) == ["cam-1", "cam-1", "cam-2",
                                                                   "cam-2"]
    audited = [e for e in rt.tables.Audit.query(dep) if e.action == "camera.dark"]
    assert sorted(e.target for e in audited) == ["cam-1", "cam-2"]
    # cam-1 reports again, then falls silent: a new spell, pushed again.
    api.ok("POST", f"/deployments/{dep}/cameras/cam-1/heartbeat", cam1, _beat(frames_read=70))
    assert check(push_s + 5) == 2
