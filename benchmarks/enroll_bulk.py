"""Bulk enrollment cost: processes vs onnxruntime threads, against moto server (docs/enrollment.md).

    .venv/bin/python benchmarks/enroll_bulk.py --data ../shared/data/faces/dev --subjects 200 \\
        --configs 1x1,1x2,2x1 [--json build/reports/enroll_bulk.json]

Each configuration (WORKERSxTHREADS) enrolls the same first N subjects (one image each by
default) into a fresh watchlist through `run_bulk`, the code `lfr enroll-bulk` runs. Reported:
wall time, CPU time of this process and its workers (getrusage, user + system), and moto
server's CPU time (read from /proc: it stands in for AWS and would not run on this machine).
The machine is shared: compare the rows of one run, not absolute figures across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (and its reaped children) from /proc, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="one folder per subject")
    p.add_argument("--subjects", type=int, default=200)
    p.add_argument("--max-images", type=int, default=1)
    p.add_argument("--configs", default="1x1,1x2,2x1", help="WORKERSxTHREADS, comma-separated")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--compute-only", action="store_true",
                   help="templates only, no AWS: CPU per subject and the steady rate (from the "
                        "first template to the last, so without the workers' start-up)")
    args = p.parse_args(argv)
    if args.compute_only:
        return compute_only(args)

    from chalicelib.local import moto_server
    from chalicelib.local.session import local_session
    from chalicelib.ops.bulk_enroll import BulkOptions, run_bulk
    from chalicelib.ops.bulk_sources import from_folder
    from chalicelib.ops.watchlists import create_watchlist

    subjects = from_folder(args.data, "benchmark", "benchmark", args.max_images)
    subjects = subjects[: args.subjects]
    server = moto_server.start()
    rows = []
    try:
        with local_session("bench", endpoint=server.endpoint) as ls, \
                tempfile.TemporaryDirectory() as tmp:
            for run, config in enumerate(args.configs.split(",")):
                workers, threads = (int(v) for v in config.lower().split("x"))
                wid = create_watchlist(ls.rt.tables, f"bench {config}", ls.rt.model_id,
                                       watchlist_id=f"wl-bench-{run}-{workers}x{threads}")
                opts = BulkOptions(journal=Path(tmp) / f"{run}.jsonl",
                                   report=Path(tmp) / f"{run}.csv", workers=workers,
                                   threads=threads, progress=False)
                moto0 = proc_cpu_s(server.process.pid)  # type: ignore[union-attr]
                s = run_bulk(ls.rt, wid, subjects, opts)
                moto = proc_cpu_s(server.process.pid) - moto0  # type: ignore[union-attr]
                row = {"config": f"{workers} process(es) x {threads} thread(s)",
                       "load_1min": round(os.getloadavg()[0], 1),
                       "subjects": s.subjects, "statuses": s.statuses, "images": s.images,
                       "images_refused": s.images_refused,
                       "wall_s": round(s.wall_s, 1), "cpu_s": round(s.cpu_s, 1),
                       "moto_cpu_s": round(moto, 1),
                       "subjects_per_wall_s": round(s.subjects / s.wall_s, 2),
                       "cpu_s_per_subject": round(s.cpu_s / s.subjects, 3)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        moto_server.stop(server)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def compute_only(args: argparse.Namespace) -> int:
    import resource
    import time
    from dataclasses import replace

    from chalicelib.ops import bulk_enroll
    from chalicelib.ops.bulk_sources import from_folder
    from chalicelib.settings import Settings

    def cpu() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    subjects = from_folder(args.data, "benchmark", "benchmark", args.max_images)
    subjects = subjects[: args.subjects]
    rows = []
    for config in args.configs.split(","):
        workers, threads = (int(v) for v in config.lower().split("x"))
        settings = replace(Settings(), onnx_threads=threads)
        inside = [0.0]
        if workers <= 1:  # in this process: time what runs inside onnxruntime
            from chalicelib.vision.factory import build_pipeline

            pipe = build_pipeline(settings)  # cached: the one _computed will use
            for session in (pipe.detector.session, pipe.recognizer.session):
                session._acc = inside  # this configuration's counter
                if not hasattr(session, "_timed"):
                    session._timed = session.run

                    def run(*a, _s=session, **kw):  # type: ignore[no-untyped-def]
                        t = time.process_time()
                        try:
                            return _s._timed(*a, **kw)
                        finally:
                            _s._acc[0] += time.process_time() - t

                    session.run = run
        t0, c0, first = time.monotonic(), cpu(), None
        for _ in bulk_enroll._computed(subjects, settings, workers):
            first = first or time.monotonic()
        end = time.monotonic()
        row = {"config": config, "load_1min": round(os.getloadavg()[0], 1),
               "wall_s": round(end - t0, 1), "first_result_s": round((first or end) - t0, 1),
               "steady_subjects_per_s": round((len(subjects) - 1) / (end - (first or t0)), 2),
               "cpu_s_per_subject": round((cpu() - c0) / len(subjects), 3)}
        if workers <= 1:
            row["onnxruntime_share_of_cpu"] = round(inside[0] / (cpu() - c0), 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
