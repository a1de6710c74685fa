"""The `lfr batch` subcommand: `add_commands(subparsers)` is wired into chalicelib/cli.py."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def cmd_batch(args: argparse.Namespace) -> int:
    import dataclasses
    import logging
    import os

    from chalicelib.batch.run import BatchOptions, archive_keys, process_archive
    from chalicelib.local.state import local_settings  # honours `lfr local up` state
    from chalicelib.runtime import Runtime
    from chalicelib.store import layout

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    settings = local_settings()
    if args.threads:
        settings = dataclasses.replace(settings, onnx_threads=args.threads)
    elif os.environ.get("LFR_ONNX_THREADS") is None:
        settings = dataclasses.replace(settings, onnx_threads=os.cpu_count() or 1)
    rt = Runtime(settings)
    bucket = args.bucket or settings.frames_bucket
    if args.key:
        keys = [args.key]
    else:
        prefix = args.prefix or layout.ARCHIVE_PREFIX
        if not prefix.startswith(layout.ARCHIVE_PREFIX):
            print(f"--prefix must be under {layout.ARCHIVE_PREFIX}", file=sys.stderr)
            return 2
        keys = archive_keys(rt.client("s3"), bucket, prefix)
    opts = BatchOptions(fps=args.fps, chunk_frames=args.chunk_frames)
    failed = 0
    for key in keys:
        try:
            report = process_archive(rt, bucket, key, opts)
        except Exception as exc:  # one bad archive must not stop the rest of a prefix
            failed += 1
            print(json.dumps({"key": key, "error": f"{type(exc).__name__}: {exc}"}), flush=True)
            if args.key:
                raise
            continue
        print(json.dumps(report.as_dict()), flush=True)
    return 1 if failed else 0


def add_commands(subparsers: Any) -> None:
    b = subparsers.add_parser(
        "batch",
        help="process footage archives in S3 (video files or archives of frames) as the stream "
             "path would: same pipeline, decisions and alerts (CUDA when a GPU is present)",
    )
    b.add_argument("--bucket", help="bucket holding the archives (default: the frames bucket)")
    which = b.add_mutually_exclusive_group()
    which.add_argument("--key", help="one object: archive/<deployment>/<camera>/<file>")
    which.add_argument("--prefix", help="every object under this prefix (default: archive/)")
    b.add_argument("--fps", type=float, default=5.0, help="frames sampled per second of video")
    b.add_argument("--chunk-frames", type=int, default=8,
                   help="frames decided together (one alert per subject per chunk)")
    b.add_argument("--threads", type=int, default=0,
                   help="onnxruntime threads (default: LFR_ONNX_THREADS, else every core)")
    b.add_argument("-v", "--verbose", action="store_true")
    b.set_defaults(func=cmd_batch)


def main(argv: list[str] | None = None) -> int:
    """`python -m chalicelib.batch.cli ...`: the same command without the rest of `lfr`."""
    p = argparse.ArgumentParser(prog="lfr")
    add_commands(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
