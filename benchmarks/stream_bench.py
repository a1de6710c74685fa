"""Stream-path benchmark (not a test): prints figures, asserts nothing.

1. Per-stage milliseconds per frame (decode, detect, align, embed, match) of the worker's own
   processing code over the clip, as the gateway would sample it.
2. Capture -> push latency on the local stack: the clip streamed in real time through the
   gateway, S3 (moto server), the frames queue, the worker, the alerts queue and the notifier,
   until the push reaches a registered phone endpoint.

Needs ../shared/data/video (internal test data); says so and exits when absent.
    .venv/bin/python benchmarks/stream_bench.py [--fps 5] [--batch-frames 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "video"
CLIP, REF = DATA / "short_hamilton_clip.mp4", DATA / "lin-manuel-miranda.png"


def stages(args: argparse.Namespace) -> None:
    from chalicelib.gateway import GatewayOptions, encode, iter_frames
    from chalicelib.ingest.batch_format import Frame
    from chalicelib.ingest.process import BatchOutcome, process_frames
    from chalicelib.matching.index import ExactIndex
    from chalicelib.matching.template import build_template
    from chalicelib.settings import Settings
    from chalicelib.vision.factory import build_pipeline

    s = Settings.from_env({"LFR_ONNX_THREADS": str(args.threads)})
    t0 = time.perf_counter()
    pipe = build_pipeline(s)
    load_s = time.perf_counter() - t0
    template = build_template(pipe, [(str(REF), REF.read_bytes())])
    index = ExactIndex(["lmm"], template.embedding[None, :], pipe.model_id)
    opts = GatewayOptions(fps=args.fps)
    now = datetime.now(UTC)
    frames = [Frame(i, f"{i}.jpg", now, encode(f, opts))
              for i, f in enumerate(iter_frames(str(CLIP), opts))]
    # Batches as the gateway sends them; costs summed over the batches.
    out = BatchOutcome()
    t0 = time.perf_counter()
    for i in range(0, len(frames), args.batch_frames):
        part = process_frames(frames[i : i + args.batch_frames], pipe, index, s.match_threshold,
                              s.max_frame_pixels)
        out.frames_processed += part.frames_processed
        out.faces_seen += part.faces_seen
        out.faces_rejected.update(part.faces_rejected)
        out.tracks += part.tracks
        out.faces_embedded += part.faces_embedded
        out.timings_ms.update(part.timings_ms)
    wall = time.perf_counter() - t0
    n = out.frames_processed
    faces = out.faces_embedded
    print(f"== per-stage cost, {n} frames of {CLIP.name} at {args.fps} fps in batches of "
          f"{args.batch_frames}, "
          f"onnxruntime threads={args.threads}, flip-embedding={s.embed_flip}")
    print(f"   model load (both sessions): {load_s * 1000:.0f} ms")
    for stage in ("decode", "detect", "mirror", "align", "embed", "match"):
        print(f"   {stage:<7} {out.timings_ms.get(stage, 0.0) / n:7.1f} ms/frame")
    print(f"   total   {wall * 1000 / n:7.1f} ms/frame ({n / wall:.1f} frames/s on this CPU); "
          f"{out.faces_seen} faces seen, {sum(out.faces_rejected.values())} gated out, "
          f"{out.tracks} tracks, {faces} faces embedded "
          f"({out.timings_ms.get('embed', 0.0) / max(faces, 1):.1f} ms/face)")


def latency(args: argparse.Namespace) -> None:
    from chalicelib import names
    from chalicelib.gateway import GatewayOptions, PresignedUploader, run_gateway
    from chalicelib.local.inspect import delivered_pushes
    from chalicelib.local.session import local_session, wait_idle
    from chalicelib.ops.cameras import camera_upload_grant
    from chalicelib.ops.deployments import create_deployment, register_device
    from chalicelib.ops.watchlists import authorise_watchlist, create_watchlist, enroll_subject

    env = {"POWERTOOLS_LOG_LEVEL": "WARNING", "LFR_ONNX_THREADS": str(args.threads)}
    with local_session("bench", extra_env=env) as ls:
        rt, s = ls.rt, ls.settings
        pipe = rt.pipeline
        wl = create_watchlist(rt.tables, "bench", pipe.model_id, created_by="operator-1")
        enroll_subject(rt.tables, rt.client("s3"), s.evidence_bucket, pipe, wl,
                       "Lin-Manuel Miranda", [(str(REF), REF.read_bytes())])
        authorise_watchlist(rt.tables, wl, "operator-2")
        dep = create_deployment(rt.tables, "bench", wl, ["cam-1"], target_fpir=0.001)
        register_device(rt.tables, rt.client("sns"), names.platform_app_arn(s, "gcm"), dep,
                        "officer-1", "gcm", "bench-token-1")
        grant = camera_upload_grant(rt.client("s3"), s.frames_bucket, dep, "cam-1",
                                    s.max_batch_bytes)
        ls.pump.start()
        try:
            run_gateway(str(CLIP), PresignedUploader(grant), dep, "cam-1",
                        GatewayOptions(fps=args.fps, batch_frames=args.batch_frames,
                                       realtime=True))
            wait_idle(rt)
        finally:
            ls.pump.stop()
        lat = sorted(
            (datetime.fromisoformat(p.data["pushed_at"])
             - datetime.fromisoformat(p.data["captured_at"])).total_seconds()
            for p in delivered_pushes(ls.endpoint))
    print(f"== capture -> push on the local stack (moto server, event pump, 1 worker), "
          f"real-time gateway at {args.fps} fps, {args.batch_frames} frames per batch")
    if not lat:
        print("   no pushes arrived")
        return
    print(f"   {len(lat)} pushes: median {statistics.median(lat):.2f} s, "
          f"min {lat[0]:.2f} s, max {lat[-1]:.2f} s "
          f"(includes waiting for the batch to fill: {args.batch_frames / args.fps:.1f} s)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fps", type=float, default=5.0)
    p.add_argument("--batch-frames", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    if not CLIP.exists() or not REF.exists():
        print(f"skipped: needs {DATA} (internal test data in ../shared/data)")
        return 0
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    stages(args)
    latency(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
