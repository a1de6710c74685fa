"""Stream-path benchmark (not a test): prints figures, asserts nothing.

1. Cost: frames per CPU-second of the worker's own processing (ingest/process.py, tracks
   carried from batch to batch as the worker carries them) over short_hamilton_clip.mp4 as the
   gateway samples it, at several settings, each in a fresh process: CPU time is getrusage of
   the whole process (all threads), not wall time. `--baseline REV` measures the same clip with
   the code of git revision REV (a temporary worktree) in the same run, for the ratio.
2. Capture -> push latency on the local stack: the clip streamed in real time through the
   gateway, S3 (moto server), the frames queue, the worker, the alerts queue and the notifier,
   until the push reaches a registered phone endpoint; p50/p95 and the stage breakdown.

Needs ../shared/data/video (internal test data); says so and exits when absent.
    .venv/bin/python benchmarks/stream_bench.py [--baseline 24f8138] [--fps 5] [--batch-frames 3]
        [--decisions decisions.json]

--decisions writes only what the code decided (each row's counts and per-batch matches, each
latency run's alerts), no timings: two versions that decide alike write identical files.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "video"
CLIP, REF = DATA / "short_hamilton_clip.mp4", DATA / "lin-manuel-miranda.png"
STAGES = ("decode", "detect", "region", "mirror", "align", "embed", "match")
# name -> settings; the deployed stage sets LFR_ONNX_THREADS=2 (.chalice/config.json).
CONFIGS = {
    "per-frame (every frame detected, every face decided)":
        {"LFR_ONNX_THREADS": "2", "LFR_TRACK_FUSION": "false", "LFR_KEY_INTERVAL_S": "0"},
    "deployed (2 threads)": {"LFR_ONNX_THREADS": "2"},
    "1 thread": {"LFR_ONNX_THREADS": "1"},
    "2 threads, spinning on": {"LFR_ONNX_THREADS": "2", "LFR_ONNX_SPINNING": "true"},
    "no continuity (each batch alone)": {"LFR_ONNX_THREADS": "2", "LFR_TRACK_CONTINUITY": "false"},
    "best 1 face per passing": {"LFR_ONNX_THREADS": "2", "LFR_TRACK_BEST_K": "1"},
    "full-frame detection every 1.0 s": {"LFR_ONNX_THREADS": "2", "LFR_KEY_INTERVAL_S": "1.0"},
}
BASELINE_CONFIGS = {"deployed (2 threads)": {"LFR_ONNX_THREADS": "2"},
                    "1 thread": {"LFR_ONNX_THREADS": "1"}}


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(env: dict[str, str], fps: float, batch_frames: int,
            repeat: int = 1) -> dict[str, object]:
    """One configuration in this process (whatever chalicelib is importable: this tree's or a
    baseline's). Only stable interfaces are used, so that older revisions run it too."""
    from chalicelib.gateway import GatewayOptions, encode, iter_frames
    from chalicelib.ingest import process
    from chalicelib.ingest.batch_format import Frame
    from chalicelib.matching.index import ExactIndex
    from chalicelib.matching.template import build_template
    from chalicelib.settings import Settings
    from chalicelib.vision import pipeline as pipeline_mod
    from chalicelib.vision.factory import build_pipeline

    # The stage timers of the pipeline read the process CPU clock here, not the wall clock: on
    # a shared machine only CPU time is comparable (all threads count, as for the totals).
    cpu_clock = types.SimpleNamespace(perf_counter=time.process_time, time=time.time)
    pipeline_mod.time = cpu_clock  # type: ignore[attr-defined]
    for name, mod in list(sys.modules.items()):  # process.py, and the modules of its steps
        if name.startswith("chalicelib.ingest.") and getattr(mod, "time", None) is time:
            mod.time = cpu_clock  # type: ignore[attr-defined]
    s = Settings.from_env(env)
    c0 = cpu_s()
    pipe = build_pipeline(s)
    load_cpu = cpu_s() - c0
    template = build_template(pipe, [(str(REF), REF.read_bytes())])
    index = ExactIndex(["lmm"], template.embedding[None, :], pipe.model_id)
    opts = GatewayOptions(fps=fps)
    t0 = datetime.now(UTC)
    frames = [Frame(i, f"{i:06d}.jpg", t0 + timedelta(seconds=i / fps), encode(f, opts))
              for i, f in enumerate(iter_frames(str(CLIP), opts))]
    try:
        from chalicelib.ingest.decide import fusion_policy

        fusion = fusion_policy(s)
    except ImportError:  # revisions before continuity
        fusion = process.FusionPolicy(enabled=s.track_fusion, best_k=s.track_best_k)
    carries = "carried" in inspect.signature(process.process_frames).parameters
    counts: Counter[str] = Counter()
    timings: Counter[str] = Counter()
    matched: list[tuple[int, str, float]] = []
    c0, w0 = cpu_s(), time.perf_counter()
    # The clip is short (46 frames, well under a CPU-second): it is run `repeat` times, each a
    # camera of its own, and the costs are summed; counts and alerts are of one pass.
    for rep in range(repeat):
        carried = None
        for n, i in enumerate(range(0, len(frames), batch_frames)):
            shift = timedelta(hours=rep)
            part = [Frame(j, f.name, f.captured_at + shift, f.data)
                    for j, f in enumerate(frames[i : i + batch_frames])]
            args = (part, pipe, index, s.match_threshold, s.max_frame_pixels, fusion)
            out = process.process_frames(*args, carried=carried) if carries else \
                process.process_frames(*args)
            if carries and getattr(s, "track_continuity", False):
                carried = out.carry
            timings.update(out.timings_ms)
            if rep == 0:
                counts.update({k: v for k, v in out.counts().items() if isinstance(v, int)})
                matched += [(n, m.subject_id, round(m.score, 6)) for m in out.matches]
    cpu, wall = cpu_s() - c0, time.perf_counter() - w0
    frames_n = counts["frames_processed"]
    return {
        "frames": frames_n, "batches": n + 1, "cpu_s": cpu / repeat, "wall_s": wall / repeat,
        "frames_per_cpu_s": frames_n * repeat / cpu, "load_cpu_s": load_cpu,
        "ms_per_frame": {k: timings.get(k, 0.0) / frames_n / repeat for k in STAGES},
        "counts": dict(counts),
        # One alert per passing: matches of one subject within the re-alert window are one.
        "alerts": sorted({subject for _, subject, _ in matched}),
        "batches_matched": len({b for b, _, _ in matched}),
        "matches": matched,
    }


def run_measure(env: dict[str, str], args: argparse.Namespace,
                tree: Path = ROOT) -> dict[str, object]:
    """measure() in a fresh process, importing chalicelib from `tree`."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--measure", json.dumps(env),
           "--fps", str(args.fps), "--batch-frames", str(args.batch_frames),
           "--repeat", str(args.repeat)]
    penv = {**os.environ, "PYTHONPATH": str(tree), "POWERTOOLS_METRICS_DISABLED": "true"}
    out = subprocess.run(cmd, cwd=tree, env=penv, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cost(args: argparse.Namespace, decisions: dict[str, Any]) -> None:
    rows: list[tuple[str, dict[str, object]]] = []
    if args.baseline:
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / "baseline"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree),
                            args.baseline], check=True, capture_output=True)
            try:
                for name, env in BASELINE_CONFIGS.items():
                    rows.append((f"baseline {args.baseline}: {name}", run_measure(env, args, tree)))
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(tree)], check=False, capture_output=True)
    for name, env in CONFIGS.items():
        rows.append((name, run_measure(env, args)))
    decisions["cost"] = {name: {k: r[k] for k in ("counts", "alerts", "batches_matched",
                                                  "matches")} for name, r in rows}
    base = rows[0][1]["frames_per_cpu_s"]
    print(f"== cost: {rows[0][1]['frames']} frames of {CLIP.name} sampled at {args.fps} fps, "
          f"batches of {args.batch_frames}, {args.repeat} passes per row; CPU of the whole "
          f"process (all threads)")
    print(f"   {'configuration':<58} {'frames/CPU-s':>12} {'x':>6} {'load CPU-s':>10} "
          f"{'embedded':>8} {'decisions':>9} {'keyframes':>9}  alerts (batches matched)")
    for name, r in rows:
        c = r["counts"]
        print(f"   {name:<58} {r['frames_per_cpu_s']:12.1f} "
              f"{r['frames_per_cpu_s'] / base:6.2f} {r['load_cpu_s']:10.2f} "
              f"{c.get('faces_embedded', 0):8d} {c.get('decisions', c.get('tracks', 0)):9d} "
              f"{c.get('keyframes', r['frames']):9d}  {r['alerts']} ({r['batches_matched']})")
    print(f"   CPU-ms per frame by stage: {'  '.join(f'{s:>7}' for s in STAGES)}")
    for name, r in rows:
        ms = r["ms_per_frame"]
        print(f"   {name[:26]:<26} {'  '.join(f'{ms.get(s, 0.0):7.2f}' for s in STAGES)}")


def latency(args: argparse.Namespace, decisions: dict[str, Any]) -> None:
    from chalicelib import names
    from chalicelib.gateway import GatewayOptions, PresignedUploader, run_gateway
    from chalicelib.ingest.batch_format import pack_batch
    from chalicelib.local.inspect import delivered_pushes
    from chalicelib.local.session import local_session
    from chalicelib.ops.cameras import camera_upload_grant
    from chalicelib.ops.deployments import create_deployment, register_device
    from chalicelib.ops.watchlists import authorise_watchlist, create_watchlist, enroll_subject
    from chalicelib.store import layout

    env = {"POWERTOOLS_LOG_LEVEL": "WARNING", "LFR_ONNX_THREADS": "2"}
    opts = GatewayOptions(fps=args.fps, batch_frames=args.batch_frames, realtime=True)
    rows = []
    with local_session("bench", extra_env=env) as ls:
        rt, s = ls.rt, ls.settings
        pipe = rt.pipeline

        def deployment(n: int) -> str:
            # A watchlist serves one deployment (and is destroyed with it): one each.
            wl = create_watchlist(rt.tables, f"bench {n}", pipe.model_id,
                                  created_by="operator-1")
            enroll_subject(rt.tables, rt.client("s3"), s.evidence_bucket, pipe, wl,
                           "Lin-Manuel Miranda", [(str(REF), REF.read_bytes())])
            authorise_watchlist(rt.tables, rt.client("s3"), rt.settings.evidence_bucket, wl,
                                "operator-2")
            dep = create_deployment(rt.tables, f"bench {n}", wl, ["cam-1"], target_fpir=0.001)
            register_device(rt.tables, rt.client("sns"), names.platform_app_arn(s, "gcm"), dep,
                            "officer-1", "gcm", f"bench-token-{n}")
            return dep

        # The worker through the real path: every batch uploaded first, then the queues
        # drained in this thread, so the process CPU is the worker's and the notifier's
        # (their boto3 calls included; moto server is another process). The first pass warms
        # the container (handler imports, clients), as a warm Lambda is; the second is measured.
        frames = _clip_jpegs(args.fps)
        for warm in (True, False):
            dep = deployment(0 if warm else -1)
            t0 = datetime.now(UTC)
            for seq, i in enumerate(range(0, len(frames), args.batch_frames)):
                part = [(t0 + timedelta(seconds=(i + j) / args.fps), f)
                        for j, f in enumerate(frames[i : i + args.batch_frames])]
                rt.client("s3").put_object(Bucket=s.frames_bucket,
                                           Key=layout.batch_key(dep, "cam-1", seq),
                                           Body=pack_batch(dep, "cam-1", seq, part))
            c0, in_functions = cpu_s(), _time_handlers(ls.pump)
            ls.pump.drain(timeout=300)
            path_cpu = cpu_s() - c0
        print(f"== the worker on the real path (moto server), warm: {len(frames)} frames in "
              f"{seq + 1} batches, {len(frames) / path_cpu:.1f} frames per CPU-second "
              f"({path_cpu:.2f} CPU-s: worker, notifier, the pump's SQS calls and every AWS "
              f"call's client side); in the functions alone (what Lambda runs, without the "
              f"event source mapping's receive and delete): "
              f"{len(frames) / in_functions[0]:.1f}")

        for run in range(1, args.latency_runs + 1):
            dep = deployment(run)
            grant = camera_upload_grant(rt.client("s3"), s.frames_bucket, dep, "cam-1",
                                        s.max_batch_bytes)
            ls.pump.start()
            try:
                report = run_gateway(str(CLIP), PresignedUploader(grant), dep, "cam-1", opts)
                ls.pump.wait_idle()
            finally:
                ls.pump.stop()
            sent = {b.sequence: b for b in report.sent}
            alerts = {a.alert_id: a for a in rt.tables.Alert.by_deployment.query(dep)}
            # The gateway numbers batches by the clock: the n-th batch of the run instead.
            nth = {seq: n for n, seq in enumerate(sorted(sent))}
            decisions.setdefault("latency_alerts", []).append(sorted(
                (a.display_name, nth.get(int(a.batch_sequence), -1), int(a.frame_index),
                 int(a.track_faces)) for a in alerts.values()))
            for p in delivered_pushes(ls.endpoint):
                if p.data.get("deployment_id") != dep:
                    continue
                a = alerts[p.data["alert_id"]]
                b = sent[int(a.batch_sequence)]
                captured = datetime.fromisoformat(p.data["captured_at"])
                pushed = datetime.fromisoformat(p.data["pushed_at"])
                rows.append({"total": (pushed - captured).total_seconds(),
                             "fill": (b.sealed_at - captured).total_seconds(),
                             "upload": (b.uploaded_at - b.sealed_at).total_seconds(),
                             "queue+worker": (a.created_at - b.uploaded_at).total_seconds(),
                             "alerts queue+push": (pushed - a.created_at).total_seconds()})
    print(f"== capture -> push on the local stack (moto server, event pump: one thread per "
          f"queue), the clip {args.latency_runs} times through a real-time gateway at "
          f"{args.fps} fps, batches of at most {args.batch_frames} frames or "
          f"{opts.max_batch_age_s} s")
    if not rows:
        print("   no pushes arrived")
        return
    totals = sorted(r["total"] for r in rows)
    p95 = totals[min(len(totals) - 1, int(np.ceil(0.95 * len(totals))) - 1)]
    print(f"   {len(rows)} pushes: p50 {statistics.median(totals):.2f} s, p95 {p95:.2f} s, "
          f"max {totals[-1]:.2f} s")
    print("   stage breakdown (median s): " + ", ".join(
        f"{k} {statistics.median(r[k] for r in rows):.2f}" for k in rows[0] if k != "total"))


def _time_handlers(pump: Any) -> list[float]:
    """Wrap the pump's handlers to sum the process CPU spent inside them (the drain runs them
    in this thread; onnxruntime's own threads work only while they run)."""
    spent = [0.0]
    for m in pump.mappings:
        inner = getattr(m.handler, "__wrapped__", m.handler)

        def timed(event: Any, context: Any, inner: Any = inner) -> Any:
            c0 = cpu_s()
            try:
                return inner(event, context)
            finally:
                spent[0] += cpu_s() - c0

        timed.__wrapped__ = inner  # type: ignore[attr-defined]
        m.handler = timed
    return spent


def _clip_jpegs(fps: float) -> list[bytes]:
    from chalicelib.gateway import GatewayOptions, encode, iter_frames

    opts = GatewayOptions(fps=fps)
    return [encode(f, opts) for f in iter_frames(str(CLIP), opts)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fps", type=float, default=5.0)
    p.add_argument("--batch-frames", type=int, default=3)
    p.add_argument("--baseline", default="", help="git revision to measure as the baseline")
    p.add_argument("--skip-latency", action="store_true")
    p.add_argument("--latency-runs", type=int, default=5)
    p.add_argument("--repeat", type=int, default=5, help="passes over the clip per cost row")
    p.add_argument("--decisions", type=Path, default=None,
                   help="write the decisions (no timings) here, to diff two versions")
    p.add_argument("--measure", help=argparse.SUPPRESS)
    args = p.parse_args()
    if not CLIP.exists() or not REF.exists():
        print(f"skipped: needs {DATA} (internal test data in ../shared/data)")
        return 0
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    if args.measure:
        print(json.dumps(measure(json.loads(args.measure), args.fps, args.batch_frames,
                                 args.repeat)))
        return 0
    decisions: dict[str, Any] = {}
    cost(args, decisions)
    if not args.skip_latency:
        latency(args, decisions)
    if args.decisions:
        args.decisions.write_text(json.dumps(decisions, indent=1) + "\n")
        print(f"decisions written to {args.decisions}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
