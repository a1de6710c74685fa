"""The calibration table of docs/accuracy.md: measured FPIR over the target on identities the
impostor model never saw (faces/dev holdout half), by target, watchlist size and references.

    .venv/bin/python benchmarks/calibration_table.py --cache /tmp/faces-dev.npz

Embedding faces/dev takes a few minutes the first time; --cache keeps the embeddings.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from chalicelib.evaluation.cli import SUBSETS
from chalicelib.evaluation.openset import (
    FaceCache,
    calibration_check,
    embed_images,
    list_identities,
    pipeline_key,
    select_identities,
)
from chalicelib.matching.calibration import load_stats
from chalicelib.settings import Settings
from chalicelib.vision.factory import embedding_id

TARGETS = (0.01, 0.001, 0.0001)
SIZES = (50, 100, 200, 400)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/faces/dev"))
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--stats", type=Path, default=None, help="default: the shipped statistics")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--enroll", default="1,3")
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    settings = Settings.from_env()
    model_id = embedding_id(settings)
    stats = load_stats(model_id, args.stats)
    ids = select_identities(list_identities(args.data), SUBSETS["holdout-half"], None)
    cache = FaceCache(model_id, args.cache, pipeline_key(settings))
    faces = embed_images([p for v in ids.values() for p in v], settings, cache,
                         workers=args.workers, progress=True)
    enrolls = [int(x) for x in args.enroll.split(",")]
    rows = []
    for enroll in enrolls:
        for seed in (int(x) for x in args.seeds.split(",")):
            for r in calibration_check(ids, faces, stats, TARGETS, SIZES, enroll=enroll,
                                       repeats=args.repeats, seed=seed, central_only=True):
                rows.append({**r, "enroll": enroll, "seed": seed})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=float) + "\n")
    cells = defaultdict(list)
    for r in rows:
        cells[(r["target_fpir"], r["enroll"], r["gallery_size"])].append(r)
    print("| target | enroll | " + " | ".join(f"N={n}" for n in SIZES) + " |")
    print("|---|---|" + "---|" * len(SIZES))
    for target in TARGETS:
        for enroll in enrolls:
            out = []
            for n in SIZES:
                rs = cells[(target, enroll, n)]
                ratios = [r["ratio_per_identity"] for r in rs]
                fps = [r["false_positives"] for r in rs]
                high = max(r["ratio_interval"][1] for r in rs)
                out.append(f"{min(ratios):.2f}-{max(ratios):.2f} ({min(fps):,}-{max(fps):,} fp;"
                           f" ≤{high:.2f})")
            print(f"| {target:g} | {enroll} | " + " | ".join(out) + " |")


if __name__ == "__main__":
    main()
