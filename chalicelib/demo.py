"""`lfr demo`: the stream path end to end on a local stack, as an officer would see it.

moto server on loopback, every resource created, a watchlist enrolled from public-domain
portraits, two officers' phones registered, synthetic street footage streamed through the
gateway in real time, the event pump standing in for Lambda, and the pushes the phones received.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

# Enrolled from their colour photo (1.jpg); they walk past in another sitting (2.jpg, greyscale).
WATCHLIST = ["Elizabeth_Warren", "Cory_Gardner", "Barbara_Lee", "James_Risch", "Gwen_Moore",
             "Dan_Benishek"]
CAMERA = "van-1-front"
FPS = 10.0


def scenes() -> list[list[Any]]:
    from chalicelib.local.scenes import Walker

    return [
        # Two passers-by, nobody on the watchlist.
        [Walker("Anna_Eshoo", 2, 120, -150, 1300), Walker("Doug_Collins", 2, 380, 1300, -150)],
        # A watchlisted person among two who are not.
        [Walker("Jackie_Speier", 2, 100, 1300, -200), Walker("Cory_Gardner", 2, 300, -200, 1200),
         Walker("Adrian_Smith", 2, 420, 900, 300)],
        # Another one, with a passer-by.
        [Walker("Elizabeth_Warren", 2, 200, 1280, 100), Walker("Bill_Pascrell", 2, 160, 0, 900)],
    ]


def _print_push(data: dict[str, Any], officer: str) -> None:
    captured = datetime.fromisoformat(data["captured_at"])
    pushed = datetime.fromisoformat(data["pushed_at"])
    print(
        f"  [{officer}'s phone] POSSIBLE MATCH {data['subject']:<18} score {data['score']:.3f} "
        f"(threshold {data['threshold']:.2f})  camera {data['camera_id']}  "
        f"captured {captured:%H:%M:%S.%f}"[:-3]
        + f"  capture->push {(pushed - captured).total_seconds():.2f} s"
    )


def run_demo(out: Path) -> int:
    from chalicelib.local.session import local_session

    out.mkdir(parents=True, exist_ok=True)
    print("1. starting the local AWS (moto server on 127.0.0.1) and creating every resource")
    with local_session("demo", log_path=out / "moto.log",
                       extra_env={"POWERTOOLS_LOG_LEVEL": "WARNING"}) as ls:
        code = _run(out, ls)
    print("local stack stopped")
    return code


def _run(out: Path, ls: Any) -> int:
    from chalice.test import Client

    from chalicelib.gateway import GatewayOptions, PresignedUploader, run_gateway
    from chalicelib.local.inspect import all_keys, delivered_pushes
    from chalicelib.local.scenes import PEOPLE, render_scene, write_video
    from chalicelib.local.session import wait_idle
    from chalicelib.ops.cameras import camera_upload_grant
    from chalicelib.ops.deployments import create_deployment
    from chalicelib.ops.watchlists import create_watchlist, enroll_subject

    rt, s, app, pump = ls.rt, ls.settings, ls.app, ls.pump

    print("2. loading the models and enrolling the watchlist")
    t0 = time.perf_counter()
    pipeline = rt.pipeline
    wl = create_watchlist(rt.tables, "Demo watchlist", pipeline.model_id, watchlist_id="wl-demo")
    for name in WATCHLIST:
        image = PEOPLE / name / "1.jpg"
        enroll_subject(rt.tables, rt.client("s3"), s.evidence_bucket, pipeline, wl,
                       name.replace("_", " "), [(str(image), image.read_bytes())],
                       source="US GPO Congressional Pictorial Directory (public domain)",
                       reason="demo")
    print(f"   {len(WATCHLIST)} subjects enrolled in {time.perf_counter() - t0:.1f} s")
    dep = create_deployment(rt.tables, "Demo deployment", wl, [CAMERA], s.match_threshold,
                            place="Demo street", deployment_id="dep-demo")

    print("3. registering two officers' phones on the deployment (REST API)")
    with Client(app) as http:
        for officer, platform in (("officer-1", "gcm"), ("officer-2", "apns")):
            resp = http.http.post(
                f"/deployments/{dep}/devices", headers={"Content-Type": "application/json"},
                body=json.dumps({"officer_id": officer, "platform": platform,
                                 "push_token": f"demo-token-{officer}"}))
            if resp.status_code != 200:
                raise RuntimeError(f"device registration failed: {resp.body!r}")

    print("4. rendering the camera footage (public-domain portraits on a street scene)")
    frames = [f for i, sc in enumerate(scenes()) for f in render_scene(sc, 40, seed=i)]
    video = write_video(frames, out / "footage" / f"{CAMERA}.avi", fps=FPS)
    print(f"   {len(frames)} frames, {len(frames) / FPS:.0f} s at {FPS:.0f} fps -> {video}")

    print("5. streaming through the gateway in real time; the pump delivers events to the app")
    pump.start()
    try:
        grant = camera_upload_grant(rt.client("s3"), s.frames_bucket, dep, CAMERA,
                                    s.max_batch_bytes)
        report = run_gateway(str(video), PresignedUploader(grant), dep, CAMERA,
                             GatewayOptions(fps=5, batch_frames=5, realtime=True))
        print(f"   sent {report.frames_sent} frames in {len(report.batches)} batches")
        wait_idle(rt)
    finally:
        pump.stop()

    pushes = delivered_pushes(ls.endpoint)
    print(f"6. alerts as the officers' phones received them ({len(pushes)} pushes):")
    for p in sorted(pushes, key=lambda p: (p.data.get("captured_at", ""), p.officer)):
        _print_push(p.data, p.officer)
    left = all_keys(rt.client("s3"), s.frames_bucket)
    print(f"   frame objects left in S3: {len(left)}")
    alerts = sorted(
        ({"alert_id": a.alert_id, "subject": a.display_name, "score": float(a.score),
          "threshold": float(a.threshold), "camera_id": a.camera_id,
          "captured_at": a.captured_at.isoformat(),
          "pushed_to": sorted(p.officer for p in pushes if p.data["alert_id"] == a.alert_id),
          "capture_to_push_s": _latency(pushes, a.alert_id)}
         for a in rt.tables.Alert.scan()),
        key=lambda a: a["captured_at"],
    )
    expected = {"Cory Gardner", "Elizabeth Warren"}
    seen = {a["subject"] for a in alerts}
    (out / "alerts.json").write_text(json.dumps(
        {"deployment_id": dep, "expected_subjects": sorted(expected), "alerts": alerts,
         "pushes": len(pushes), "frame_objects_left": len(left)}, indent=2))
    print(f"   wrote {out / 'alerts.json'}: {len(alerts)} alerts for {sorted(seen)}; "
          f"expected {sorted(expected)}")
    return 0 if seen == expected and not left else 1


def _latency(pushes: list[Any], alert_id: str) -> float | None:
    for p in pushes:
        if p.data.get("alert_id") == alert_id:
            return round((datetime.fromisoformat(p.data["pushed_at"])
                          - datetime.fromisoformat(p.data["captured_at"])).total_seconds(), 3)
    return None
