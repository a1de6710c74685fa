"""A van of four cameras (issue 21), a benchmark (not a test): prints figures, asserts nothing.

Four gateways at once, each in its own thread, at 5 fps in real time, each through an uplink of
its own (tests/gateway_walk.py: grant from the API, heartbeats, an UplinkProxy per camera),
against the API over HTTP (tests/integration/http_api.py) and moto server, while the event pump
runs the worker and the notifier in its threads. Each camera films a drawn street (640x360) that
different watchlisted people walk past, so each alert can be checked to be its own camera's:
raised on the camera the person passed, and on no other. One camera's uplink drops for a few
seconds; the cameras endpoint, polled throughout, shows whether only that camera goes dark and
degraded while the others stay live.

Printed: per camera, frames read / sent / shed, alerts expected / raised / duplicated / foreign,
capture -> push p50 / p95 / max (the push payload's `captured_at` and `pushed_at`), the states
the API showed and its final view; the latency's stages; the CPU of this process (gateways,
proxies, API, pump, worker, notifier: every thread) and of moto server; then one JSON line.

    .venv/bin/python benchmarks/gateway_van.py [--seconds 40] [--cameras 4] [--degrade cam-4]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.stream_bench import cpu_s  # noqa: E402
from tests.gateway_walk import (  # noqa: E402
    draw_walk,
    live_options,
    officer_get,
    walk_through_uplink,
)
from tests.integration.conftest import build_scenario, demo_person, jpeg  # noqa: E402
from tests.integration.http_api import serve_api  # noqa: E402

WALK = 6  # frames a passer is in view (1.2 s at 5 fps), walking left to right
MAX_AGE_S = 120.0  # the gateway's retry limit, as deployed
AFTER_S = 5.0  # how long after the link is back its camera's state is still about the drop
# Watchlisted people, dealt round-robin to the cameras: cam-1 gets the 1st, 5th, 9th ...
PEOPLE = ["Cory_Gardner", "Gwen_Moore", "Elizabeth_Warren", "Anna_Eshoo", "Barbara_Lee",
          "Amy_Klobuchar", "Adrian_Smith", "James_Risch", "Doris_Matsui", "Kathy_Castor",
          "John_McCain", "Debbie_Stabenow", "Karen_Bass", "John_Lewis", "Joe_Wilson",
          "Cheri_Bustos"]
WARM = "Nancy_Pelosi"  # warms the worker and the notifier on a deployment of its own
STAGES = ("fill", "upload", "frames queue", "worker", "alerts queue+push")


def plan(cameras: list[str], per_camera: int, seconds: float) -> dict[str, dict[str, float]]:
    """camera -> {person: when they enter its view (s into the clip)}. Passers are spread over
    the clip; camera k's pass 0.25 s after camera k-1's, so the four cameras' faces reach the
    worker close together, as on a busy street."""
    if per_camera * len(cameras) > len(PEOPLE):
        raise SystemExit(f"at most {len(PEOPLE)} people: {len(cameras)} cameras x {per_camera}")
    span = (seconds - 2.0) / per_camera
    return {cam: {PEOPLE[j * len(cameras) + c]: round(1.0 + (j + 0.4) * span + 0.25 * c, 2)
                  for j in range(per_camera)}
            for c, cam in enumerate(cameras)}


def proc_cpu_s(pid: int) -> float:
    """User + system CPU of another process (moto server), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, math.ceil(q * len(s)) - 1)]


def time_handlers(pump: Any) -> dict[str, list[tuple[float, float, int, float]]]:
    """Each handler invocation's (start as epoch s, wall s, records, CPU s of its own thread):
    how busy the worker was, how long a batch waited in the frames queue before the invocation
    that took it, and how much of the invocation was on a CPU (its own thread only: the work of
    onnxruntime's second thread is not in it)."""
    calls: dict[str, list[tuple[float, float, int, float]]] = defaultdict(list)
    for m in pump.mappings:
        inner = m.handler

        def timed(event: Any, context: Any, inner: Any = inner, name: str = m.function_name
                  ) -> Any:
            t0, w0, c0 = time.time(), time.monotonic(), time.thread_time()
            try:
                return inner(event, context)
            finally:
                calls[name].append((t0, time.monotonic() - w0, len(event["Records"]),
                                    time.thread_time() - c0))

        timed.__wrapped__ = inner  # type: ignore[attr-defined]
        m.handler = timed
    return calls


def watch(api: str, secret: str, dep: str, began: float, done: threading.Event,
          seen: list[tuple[float, dict[str, str]]], why: dict[tuple[float, str], str],
          every_s: float = 0.5) -> None:
    """Polls GET /deployments/{id}/cameras (the officers' console, not through any uplink)."""
    while not done.is_set():
        with contextlib.suppress(OSError, ValueError):
            cams = officer_get(api, secret, f"/deployments/{dep}/cameras")
            t = time.monotonic() - began
            seen.append((t, {c["camera_id"]: c["state"] for c in cams}))
            for c in cams:  # what a degraded camera's last report said
                if c["state"] == "degraded":
                    why[(t, c["camera_id"])] = (f"queued {c['queued_frames']} frames, "
                                                f"{c['retries']} retries, "
                                                f"shed {c['frames_shed'] or 0}")
        done.wait(every_s)


def timeline(seen: list[tuple[float, dict[str, str]]], cam: str) -> list[tuple[float, str]]:
    """The camera's states as first seen: [(s into the run, state)]."""
    out: list[tuple[float, str]] = []
    for t, states in seen:
        state = states.get(cam)
        if state and (not out or out[-1][1] != state):
            out.append((t, state))
    return out


class DropMetricLines:
    """stdout without powertools' metric blobs: in the pump no invocation flushes its metrics,
    so powertools prints a set whenever a metric reaches 100 values (a line of kilobytes)."""

    def __init__(self, out: Any) -> None:
        self.out, self.dropped, self._line = out, 0, ""

    def write(self, text: str) -> int:
        self._line += text
        while "\n" in self._line:
            line, self._line = self._line.split("\n", 1)
            if line.startswith('{"_aws"'):
                self.dropped += 1
            else:
                self.out.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.out.flush()



def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=40.0, help="clip length per camera")
    p.add_argument("--cameras", type=int, default=4)
    p.add_argument("--people", type=int, default=4, help="watchlisted passers per camera")
    p.add_argument("--fps", type=float, default=5.0)
    p.add_argument("--degrade", default="cam-4",
                   help="the camera whose uplink drops mid-run ('none': no camera)")
    p.add_argument("--down-s", type=float, default=6.0,
                   help="how long its link is down (connections refused), from 30%% of the clip")
    p.add_argument("--heartbeat-s", type=float, default=1.0)
    p.add_argument("--json", type=Path, help="also write the JSON line here")
    args = p.parse_args()
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    from chalicelib.local import moto_server
    from chalicelib.local.session import local_session

    cameras = [f"cam-{i}" for i in range(1, args.cameras + 1)]
    passers = plan(cameras, args.people, args.seconds)
    degrade = None if args.degrade == "none" else args.degrade
    if degrade is not None and degrade not in cameras:
        raise SystemExit(f"--degrade {degrade}: not one of {cameras}")
    w0 = round(0.3 * args.seconds, 1)
    window = (w0, round(w0 + args.down_s, 1))
    tmp = Path(tempfile.mkdtemp(prefix="gateway-van-"))
    for cam in cameras:
        draw_walk(tmp / cam, passers[cam], args.seconds, args.fps, in_view=WALK)
    frames_n = {cam: int(args.seconds * args.fps) for cam in cameras}

    env = {"POWERTOOLS_LOG_LEVEL": "WARNING", "LFR_ONNX_THREADS": "2"}
    server = moto_server.start()
    quiet = DropMetricLines(sys.stdout)
    try:
        with contextlib.redirect_stdout(quiet), \
                local_session("van", endpoint=server.endpoint, extra_env=env) as ls:
            rt, pump = ls.rt, ls.pump
            # Warm: the worker's imports and models and the notifier's clients, as a warm
            # Lambda has them, through one batch of a deployment of its own.
            warm = build_scenario(rt, ls.endpoint,
                                  {WARM.replace("_", " "): [demo_person(WARM, 1)]})
            warm.upload(0, [jpeg(demo_person(WARM, 2))] * 3)
            pump.drain(timeout=300)

            everyone = [n for cam in cameras for n in passers[cam]]
            sc = build_scenario(rt, ls.endpoint,
                                {n.replace("_", " "): [demo_person(n, 1)] for n in everyone},
                                cameras=tuple(cameras))
            dep, secret = sc.deployment_id, ls.settings.local_auth_secret
            calls = time_handlers(pump)
            reports: dict[str, Any] = {}
            errors: dict[str, str] = {}
            seen: list[tuple[float, dict[str, str]]] = []
            why: dict[tuple[float, str], str] = {}
            proxy_seen: dict[str, dict[str, int]] = {}
            with serve_api(ls.app) as api:

                def gateway(cam: str) -> None:
                    opts = live_options(args.fps, MAX_AGE_S)
                    opts.heartbeat_s = args.heartbeat_s
                    uplink = [(window[0], "down"), (window[1], "up")] if cam == degrade else []
                    try:
                        reports[cam], proxy_seen[cam] = walk_through_uplink(
                            tmp / cam, api, secret, dep, cam, uplink, opts, tmp)
                    except Exception as exc:  # noqa: BLE001  (reported, not raised)
                        errors[cam] = repr(exc)

                pump.start()
                done = threading.Event()
                began = time.monotonic()
                c0, m0 = cpu_s(), proc_cpu_s(server.process.pid)  # type: ignore[union-attr]
                load0 = os.getloadavg()[0]
                helpers = [threading.Thread(target=watch, args=(api, secret, dep, began, done,
                                                                seen, why), daemon=True)]
                gateways = [threading.Thread(target=gateway, args=(cam,), name=f"gw-{cam}")
                            for cam in cameras]
                for t in helpers + gateways:
                    t.start()
                try:
                    for t in gateways:
                        t.join()
                    gateways_s = time.monotonic() - began
                    pump.wait_idle(timeout=300)
                    wall = time.monotonic() - began
                    cpu = cpu_s() - c0
                    moto_cpu = proc_cpu_s(server.process.pid) - m0  # type: ignore[union-attr]
                    done.wait(args.heartbeat_s)  # one more look at the cameras
                finally:
                    done.set()
                    for t in helpers:
                        t.join()
                    pump.stop()
                final = officer_get(api, secret, f"/deployments/{dep}/cameras")
            alerts = sc.alerts()
            pushes = [p for p in sc.pushes() if "alert_id" in p.data]
    finally:
        moto_server.stop(server)
        shutil.rmtree(tmp, ignore_errors=True)

    # -- what each camera did -------------------------------------------------------------
    by_alert = {a.alert_id: a for a in alerts}
    push_count = Counter(p.data["alert_id"] for p in pushes)
    final_by = {c["camera_id"]: c for c in final}
    rows: list[dict[str, Any]] = []
    stage_rows: list[dict[str, float]] = []
    latencies: dict[str, list[float]] = defaultdict(list)
    mismatched_push = 0
    for p in pushes:
        a = by_alert.get(p.data["alert_id"])
        if a is None or a.camera_id != p.data["camera_id"]:
            mismatched_push += 1
            continue
        captured = datetime.fromisoformat(p.data["captured_at"])
        pushed = datetime.fromisoformat(p.data["pushed_at"])
        total = (pushed - captured).total_seconds()
        latencies[a.camera_id].append(total)
        report = reports.get(a.camera_id)
        batch = next((b for b in report.sent if b.sequence == int(a.batch_sequence)),
                     None) if report else None
        if batch is not None:
            stage_rows.append({
                "total": total, "fill": (batch.sealed_at - captured).total_seconds(),
                "upload": (batch.uploaded_at - batch.sealed_at).total_seconds(),
                **_queue_and_worker(batch.uploaded_at, a.created_at,
                                    calls.get("frames_worker", [])),
                "alerts queue+push": (pushed - a.created_at).total_seconds(),
                "camera": a.camera_id})  # type: ignore[dict-item]
    for cam in cameras:
        s = reports[cam].summary if cam in reports else {}
        expected = {n.replace("_", " ") for n in passers[cam]}
        got = Counter(a.display_name for a in alerts if a.camera_id == cam)
        lat = latencies.get(cam, [])
        tl = timeline(seen, cam)
        in_window = {st for t, st in ((t, st[cam]) for t, st in seen if cam in st)
                     if window[0] <= t <= window[1] + AFTER_S}
        degraded_samples = sum(1 for _, st in seen if st.get(cam) == "degraded")
        f = final_by.get(cam, {})
        rows.append({
            "camera": cam, "uplink": (f"down {window[0]:g}-{window[1]:g} s"
                                      if cam == degrade else "clean"),
            "frames_drawn": frames_n[cam], "frames_read": s.get("frames_read"),
            "frames_sent": s.get("frames_sent"), "frames_shed": s.get("frames_shed_total"),
            "shed_reasons": s.get("frames_shed"), "retries": s.get("retries"),
            "alerts_expected": len(expected), "alerts_raised": len(expected & set(got)),
            "alerts_duplicated": sum(n - 1 for n in got.values() if n > 1),
            "alerts_foreign": sorted(set(got) - expected),
            "missed": sorted(expected - set(got)),
            "pushes": sum(push_count[a.alert_id] for a in alerts if a.camera_id == cam),
            "p50_s": round(statistics.median(lat), 3) if lat else None,
            "p95_s": round(pct(lat, 0.95), 3) if lat else None,
            "max_s": round(max(lat), 3) if lat else None,
            "states": tl,
            "states_in_window": sorted(in_window),  # the drop, and AFTER_S after it
            "degraded_samples": degraded_samples,
            "final_state": f.get("state"), "frames_captured": f.get("frames_captured"),
            "frames_reached_worker": f.get("frames_reached_worker"),
            "frames_lost_share": f.get("frames_lost_share"),
            "proxy": proxy_seen.get(cam), "error": errors.get(cam),
        })

    every = [x for cam in cameras for x in latencies.get(cam, [])]
    clean = [x for cam in cameras if cam != degrade for x in latencies.get(cam, [])]
    sent_total = sum(r["frames_sent"] or 0 for r in rows)
    worker = calls.get("frames_worker", [])
    notifier = calls.get("alerts_notifier", [])
    walls = [w for _, w, *_ in worker]
    worker_cpu = sum(c for *_, c in worker)
    busy = sum(walls)

    slowed = (f"the uplink of {degrade} down (connections refused) from {window[0]:g} to "
              f"{window[1]:g} s" if degrade else "no uplink degraded")
    van = f"{len(cameras)} camera{'s' if len(cameras) > 1 else ''}"
    print(f"== a van of {van}: {args.fps:g} fps in real time, {args.seconds:g} s each, 640x360,"
          f" each through its own uplink proxy; API over HTTP, moto server, "
          f"event pump (one thread per queue); {len(everyone)} subjects in one watchlist, "
          f"{args.people} different ones passing each camera; {slowed}")
    print(f"   {'camera':<6} {'uplink':<15} {'read':>5} {'sent':>5} {'shed':>5} "
          f"{'retries':>7} | {'alerts exp':>10} {'raised':>6} {'dup':>4} {'foreign':>7} "
          f"{'pushes':>6} | {'p50 s':>6} {'p95 s':>6} {'max s':>6}")
    for r in rows:
        print(f"   {r['camera']:<6} {r['uplink']:<15} {r['frames_read'] or 0:>5} "
              f"{r['frames_sent'] or 0:>5} {r['frames_shed'] or 0:>5} {r['retries'] or 0:>7} | "
              f"{r['alerts_expected']:>10} {r['alerts_raised']:>6} {r['alerts_duplicated']:>4} "
              f"{len(r['alerts_foreign']):>7} {r['pushes']:>6} | "
              f"{_f(r['p50_s'])} {_f(r['p95_s'])} {_f(r['max_s'])}")
    for r in rows:
        if r["missed"] or r["alerts_foreign"] or r["error"]:
            print(f"   {r['camera']}: missed {r['missed']}, foreign {r['alerts_foreign']}, "
                  f"error {r['error']}")
    print(f"   all cameras: {len(every)} pushes, p50 {_f(_med(every))} s, "
          f"p95 {_f(pct(every, 0.95) if every else None)} s, "
          f"max {_f(max(every) if every else None)} s")
    if degrade:
        print(f"   clean uplinks only: {len(clean)} pushes, p50 {_f(_med(clean))} s, "
              f"p95 {_f(pct(clean, 0.95) if clean else None)} s, "
              f"max {_f(max(clean) if clean else None)} s")
    if mismatched_push:
        print(f"   {mismatched_push} pushes whose camera is not their alert's")
    if stage_rows:
        print("   stages (median s, all pushes): " + ", ".join(
            f"{k} {statistics.median(r[k] for r in stage_rows):.2f}" for k in STAGES))
        worst = max(stage_rows, key=lambda r: r["total"])
        print(f"   slowest push ({worst['camera']}, {worst['total']:.2f} s): " + ", ".join(
            f"{k} {worst[k]:.2f}" for k in STAGES))
    print(f"== camera health as GET /deployments/{{id}}/cameras showed it (polled every 0.5 s; "
          f"heartbeat every {args.heartbeat_s:g} s); s into the run")
    for r in rows:
        states = ", ".join(f"{st} {t:.1f}" + (f" ({why[(t, r['camera'])]})"
                                              if (t, r["camera"]) in why else "")
                           for t, st in r["states"])
        print(f"   {r['camera']:<6} {states}")
        slow = (f"from the drop to {AFTER_S:g} s after it: "
                f"{', '.join(r['states_in_window']) or '-'}; " if degrade else "")
        print(f"          {slow}"
              f"samples degraded: {r['degraded_samples']}; final: {r['final_state']}, "
              f"captured {r['frames_captured']}, reached worker "
              f"{r['frames_reached_worker']}, lost share {r['frames_lost_share']}")
    print(f"== CPU over the run ({wall:.1f} s wall: gateways {gateways_s:.1f} s, then the "
          f"queues drained), on {os.cpu_count()} cores shared with other work (1-min load "
          f"average {load0:.2f} at the start, {os.getloadavg()[0]:.2f} at the end)")
    print(f"   this process (gateways, proxies, API, pump, worker, notifier; all threads): "
          f"{cpu:.1f} CPU-s = {cpu / wall:.2f} cores; moto server: {moto_cpu:.1f} CPU-s = "
          f"{moto_cpu / wall:.2f} cores")
    print(f"   {sent_total} frames reached the worker: {sent_total / cpu:.1f} frames per "
          f"CPU-second of this process, {sent_total / (cpu + moto_cpu):.1f} with moto "
          f"server's")
    print(f"   worker: {len(worker)} invocations ({sum(n for _, _, n, _ in worker)} batches), "
          f"busy {busy:.1f} s of {wall:.1f} s wall ({busy / wall:.0%}); per invocation "
          f"p50 {_f(_med(walls))} s, max {_f(max(walls, default=None))} s; "
          f"on a CPU (its own thread) {worker_cpu:.1f} s of the {busy:.1f} s busy; "
          f"notifier: {len(notifier)} invocations, busy "
          f"{sum(w for _, w, *_ in notifier):.1f} s")
    out = {
        "cameras": len(cameras), "fps": args.fps, "seconds": args.seconds,
        "degraded": degrade, "down_window_s": list(window) if degrade else None,
        "pushes": len(every),
        "p50_s": _r(_med(every)), "p95_s": _r(pct(every, 0.95) if every else None),
        "max_s": _r(max(every) if every else None),
        "p95_clean_s": _r(pct(clean, 0.95) if clean else None),
        "alerts_expected": sum(r["alerts_expected"] for r in rows),
        "alerts_raised": sum(r["alerts_raised"] for r in rows),
        "alerts_duplicated": sum(r["alerts_duplicated"] for r in rows),
        "alerts_foreign": sum(len(r["alerts_foreign"]) for r in rows),
        "frames_read": sum(r["frames_read"] or 0 for r in rows), "frames_sent": sent_total,
        "frames_shed": sum(r["frames_shed"] or 0 for r in rows),
        # Which cameras the API showed other than live from the drop until AFTER_S after it:
        # the one whose link dropped alone, if health is each camera's own.
        "not_live_in_window": sorted(r["camera"] for r in rows
                                     if set(r["states_in_window"]) - {"live"}),
        "load_avg_start": round(load0, 2), "cpu_s": round(cpu, 2),
        "moto_cpu_s": round(moto_cpu, 2), "wall_s": round(wall, 1),
        "frames_per_cpu_s": round(sent_total / cpu, 1),
        "stages_median_s": {k: round(statistics.median(r[k] for r in stage_rows), 3)
                            for k in STAGES} if stage_rows else None,
        "worker_busy_share": round(busy / wall, 3),
        "worker_thread_cpu_s": round(worker_cpu, 2), "errors": errors,
        "per_camera": {r["camera"]: {k: r[k] for k in (
            "frames_read", "frames_sent", "frames_shed", "alerts_raised", "alerts_duplicated",
            "alerts_foreign", "p50_s", "p95_s", "max_s", "degraded_samples", "final_state")}
            for r in rows},
    }
    line = json.dumps(out)
    print(line)
    if args.json:
        args.json.write_text(line + "\n")
    return 0


def _queue_and_worker(uploaded: datetime, created: datetime,
                      invocations: list[tuple[float, float, int, float]]
                      ) -> dict[str, float]:
    """Upload -> alert row, split at the start of the worker invocation that wrote the row."""
    t = created.timestamp()
    start = max((t0 for t0, w, *_ in invocations if t0 <= t <= t0 + w), default=None)
    if start is None:
        start = uploaded.timestamp()
    start = max(start, uploaded.timestamp())
    return {"frames queue": start - uploaded.timestamp(), "worker": t - start}


def _med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _f(x: float | None) -> str:
    return f"{x:6.2f}" if x is not None else f"{'-':>6}"


if __name__ == "__main__":
    sys.exit(main())
