"""`lfr demo`: a deployment end to end on a local stack, as operators and officers see it.

moto server on loopback and every resource; through the REST API a watchlist drafted from
public-domain portraits and authorised by a second operator, a deployment with a calibrated
threshold, two officers' phones; synthetic street footage streamed by the camera gateway in real
time, the event pump standing in for Lambda; the pushes the phones received, the officers'
adjudications, the end of the deployment, the retention sweep and the transparency record.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

# Enrolled from their colour photo (1.jpg); they walk past in another sitting (2.jpg, greyscale).
WATCHLIST = ["Elizabeth_Warren", "Cory_Gardner", "Barbara_Lee", "James_Risch", "Gwen_Moore",
             "Dan_Benishek"]
CAMERA = "van-1-front"
# Who of the watchlist really walks past (scenes below): the alerts the demo expects.
EXPECTED = {"Cory Gardner", "Elizabeth Warren"}
TARGET_FPIR = 0.001
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


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(Path(args.out), backend=args.backend)


def add_commands(sub: Any) -> None:
    """`lfr demo`, placed in the `lfr` command by chalicelib/cli.py."""
    from chalicelib.local.session import BACKENDS

    demo = sub.add_parser("demo", help="the whole stream path end to end on a local stack")
    demo.add_argument("--out", default="demo-out")
    demo.add_argument("--backend", choices=BACKENDS, default="moto",
                      help="the local AWS to run on (localstack: DynamoDB on moto server)")
    demo.set_defaults(func=cmd_demo)


def run_demo(out: Path, backend: str = "moto") -> int:
    from chalicelib.local.session import local_session

    out.mkdir(parents=True, exist_ok=True)
    where = ("LocalStack in host mode, DynamoDB on moto server" if backend == "localstack"
             else "moto server")
    print(f"1. starting the local AWS ({where}, on 127.0.0.1) and creating every resource")
    with local_session("demo", log_path=out / "moto.log",
                       extra_env={"POWERTOOLS_LOG_LEVEL": "WARNING"},
                       backend=backend) as ls:  # type: ignore[arg-type]
        code = _run(out, ls)
    print("local stack stopped")
    return code


def _run(out: Path, ls: Any) -> int:
    from chalice.test import Client

    from chalicelib.local.api_client import ApiClient
    from chalicelib.local.inspect import all_keys, delivered_pushes

    rt, s = ls.rt, ls.settings
    with Client(ls.app) as http:
        api = ApiClient(http, s.local_auth_secret)
        op1, op2 = api.token("operator-1", ["operator"]), api.token("operator-2", ["operator"])
        wid = _draft_watchlist(api, op1, op2)
        did = _create_deployment(api, op1, wid)
        officers = _register_phones(api, did)
        video = _render_footage(out)
        _stream(api, ls.pump, did, video)

        pushes = delivered_pushes(ls.endpoint)
        print(f"6. alerts as the officers' phones received them ({len(pushes)} pushes):")
        for p in sorted(pushes, key=lambda p: (p.data.get("captured_at", ""), p.officer)):
            _print_push(p.data, p.officer)
        left = all_keys(rt.client("s3"), s.frames_bucket)
        print(f"   frame objects left in S3: {len(left)}")

        _adjudicate(api, officers["officer-1"], did)
        record, alerts = _end(api, rt, op1, did)
    _print_record(record)
    return _write_results(out, did, record, alerts, pushes, len(left))


def _draft_watchlist(api: Any, op1: str, op2: str) -> str:
    import base64

    from chalicelib.local.scenes import PEOPLE

    print("2. operator-1 drafts the watchlist through the API (loading the models)")
    t0 = time.perf_counter()
    wid = api.ok("POST", "/watchlists", op1, {"name": "Demo watchlist"})["watchlist_id"]
    for name in WATCHLIST:
        image = PEOPLE / name / "1.jpg"
        api.ok("POST", f"/watchlists/{wid}/subjects", op1, {
            "display_name": name.replace("_", " "),
            "images_b64": [base64.b64encode(image.read_bytes()).decode()],
            "source": "US GPO Congressional Pictorial Directory (public domain)",
            "reason": "demo"})
    print(f"   {len(WATCHLIST)} subjects enrolled in {time.perf_counter() - t0:.1f} s")
    _print_outlook(api.ok("GET", f"/watchlists/{wid}", op1))
    print("   operator-2 authorises it")
    api.ok("POST", f"/watchlists/{wid}/authorise", op2)
    return wid


def _print_outlook(summary: dict[str, Any]) -> None:
    """What the list will probably catch (ops/watchlist_outlook.py), as an operator reads it
    before asking for authorisation."""
    out = summary["outlook"]
    if out.get("expected_tpir") is None:
        return
    flagged = [s["display_name"] for s in summary["subjects"] if s["likely_missed"]]
    print(f"   outlook at {out['basis']} (threshold {out['threshold']:.3f}): expected to catch "
          f"{out['expected_tpir']:.0%} of later photos; {len(flagged)} subjects probably "
          f"missed{': ' + ', '.join(flagged) if flagged else ''}")


def _create_deployment(api: Any, op1: str, wid: str) -> str:
    from datetime import UTC, timedelta

    now = datetime.now(UTC)
    dep = api.ok("POST", "/deployments", op1, {
        "name": "Demo deployment", "place": "Demo street", "watchlist_id": wid,
        "cameras": [CAMERA], "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(), "target_fpir": TARGET_FPIR,
        "authorising_officer": "Supt. Demo", "reason": "demonstration",
        "deployment_id": "dep-demo"})
    did = dep["deployment_id"]
    print(f"   deployment {did}: target false alert rate {TARGET_FPIR} per passer-by -> "
          f"calibrated threshold {dep['threshold']:.3f} for {dep['watchlist_size']} subjects")
    return did


def _register_phones(api: Any, did: str) -> dict[str, str]:
    """Each officer's token, once their phone is registered on the deployment."""
    print("3. two officers register their phones on the deployment")
    officers = {o: api.token(o, ["officer"], [did]) for o in ("officer-1", "officer-2")}
    for (officer, tok), platform in zip(officers.items(), ("gcm", "apns"), strict=True):
        api.ok("POST", f"/deployments/{did}/devices", tok, {
            "officer_id": officer, "platform": platform,
            "push_token": f"demo-token-{officer}"})
    return officers


def _render_footage(out: Path) -> Path:
    from chalicelib.local.scenes import render_scene, write_video

    print("4. rendering the camera footage (public-domain portraits on a street scene)")
    frames = [f for i, sc in enumerate(scenes()) for f in render_scene(sc, 40, seed=i)]
    video = write_video(frames, out / "footage" / f"{CAMERA}.avi", fps=FPS)
    print(f"   {len(frames)} frames, {len(frames) / FPS:.0f} s at {FPS:.0f} fps -> {video}")
    return video


def _stream(api: Any, pump: Any, did: str, video: Path) -> None:
    from chalicelib.gateway import GatewayOptions, PresignedUploader, run_gateway

    print("5. the camera streams through the gateway in real time with its own upload "
          "grant; the pump delivers events to the app")
    camera = api.token(CAMERA, ["camera"], camera=f"{did}/{CAMERA}")
    grant = api.ok("POST", f"/deployments/{did}/cameras/{CAMERA}/grant", camera)
    pump.start()
    try:
        report = run_gateway(str(video), PresignedUploader(grant), did, CAMERA,
                             GatewayOptions(fps=5, batch_frames=5, realtime=True))
        print(f"   sent {report.frames_sent} frames in {len(report.batches)} batches")
        pump.wait_idle()
    finally:
        pump.stop()


def _adjudicate(api: Any, officer: str, did: str) -> None:
    print("7. officer-1 reviews each alert (camera crop beside the watchlist image) and "
          "records the adjudication and outcome")
    for a in api.ok("GET", f"/deployments/{did}/alerts", officer):
        api.ok("GET", f"/alerts/{a['alert_id']}", officer)
        # The demo knows who really walked past; in the field the officer decides.
        decision = "true_alert" if a["subject"] in EXPECTED else "false_alert"
        api.ok("POST", f"/alerts/{a['alert_id']}/adjudication", officer, {"decision": decision})
        api.ok("POST", f"/alerts/{a['alert_id']}/outcome", officer,
               {"outcome": "engaged_released" if decision == "true_alert" else "not_engaged"})
        print(f"   {a['subject']}: {decision}")


def _end(api: Any, rt: Any, op1: str, did: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """End the deployment and sweep; the record and the alerts, as an auditor reads them."""
    from datetime import UTC, timedelta

    from chalicelib.ops.retention import sweep

    s = rt.settings
    print("8. the deployment ends; the retention sweep destroys the watchlist")
    api.ok("POST", f"/deployments/{did}/end", op1)
    done = sweep(rt.tables, rt.client("s3"), s.evidence_bucket,
                 datetime.now(UTC) + timedelta(hours=s.watchlist_grace_hours),
                 timedelta(hours=s.watchlist_grace_hours))
    print(f"   {done['subjects_destroyed']} subjects, their images and embeddings deleted")
    auditor = api.token("auditor-1", ["auditor"])
    record = api.ok("GET", f"/deployments/{did}/record", auditor)
    return record, api.ok("GET", f"/deployments/{did}/alerts", auditor)


def _print_record(record: dict[str, Any]) -> None:
    from chalicelib.ops.records import rate_text

    print("9. transparency record:")
    for key in ("place", "starts_at", "ends_at", "watchlist_size", "target_fpir", "threshold",
                "faces_seen", "people_seen", "alerts", "true_alerts", "false_alerts",
                "unadjudicated", "lookalike_alerts", "engagements", "arrests",
                "expected_false_alerts"):
        print(f"   {key:<26} {record[key]}")
    for key, label in (("measured_fpir", "false alerts per passer-by"),
                       ("false_alerts_per_face", "false alerts per face")):
        print(f"   {label:<26} {rate_text(record, key)}")
    print(f"   (intervals: {record['rate_interval']})")


def _write_results(out: Path, did: str, record: dict[str, Any], alerts: list[dict[str, Any]],
                   pushes: list[Any], left: int) -> int:
    """report.json and alerts.json; 0 where exactly the expected subjects alerted and no frame
    object was left behind."""
    (out / "report.json").write_text(json.dumps(record, indent=2))
    rows = [
        {"alert_id": a["alert_id"], "subject": a["subject"], "score": a["score"],
         "threshold": a["threshold"], "target_fpir": a["target_fpir"],
         "camera_id": a["camera_id"], "captured_at": a["captured_at"], "status": a["status"],
         "outcome": a["outcome"],
         "pushed_to": sorted(p.officer for p in pushes if p.data["alert_id"] == a["alert_id"]),
         "capture_to_push_s": _latency(pushes, a["alert_id"])}
        for a in sorted(alerts, key=lambda a: a["captured_at"])
    ]
    seen = {a["subject"] for a in rows}
    (out / "alerts.json").write_text(json.dumps(
        {"deployment_id": did, "expected_subjects": sorted(EXPECTED), "alerts": rows,
         "pushes": len(pushes), "frame_objects_left": left}, indent=2))
    print(f"   wrote {out / 'alerts.json'} ({len(rows)} alerts for {sorted(seen)}; expected "
          f"{sorted(EXPECTED)}) and {out / 'report.json'}")
    return 0 if seen == EXPECTED and not left else 1


def _latency(pushes: list[Any], alert_id: str) -> float | None:
    for p in pushes:
        if p.data.get("alert_id") == alert_id:
            return round((datetime.fromisoformat(p.data["pushed_at"])
                          - datetime.fromisoformat(p.data["captured_at"])).total_seconds(), 3)
    return None
