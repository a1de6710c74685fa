"""What the recognizer allows the walk-by at a threshold (not a test): each watchlisted walker's
photo as a still against its reference, prints figures, asserts nothing. Issue 23.

The walk-by pastes one photo per walker into the footage, at 40-110 px. The best any pipeline can
do with that walker is the photo seen whole: the reference enrolled as the walk-by enrolls it,
the walker's photo analysed on its own (upscaled to detect_min_side, steadied), and the cosine
between the two. A walker whose still scores under the threshold can only be caught by chance
(a view that happens to score higher); one above it is catchable. The count above the
deployment's threshold is the recognizer's ceiling for the walk-by at that target.

    .venv/bin/python benchmarks/walkby.py --target-fpir 0.00001 --json wb.json
    .venv/bin/python benchmarks/walkby_ceiling.py wb.json [--threshold 0.4391 ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from chalicelib.matching.template import assess_reference
from chalicelib.settings import Settings
from chalicelib.vision.factory import build_pipeline
from chalicelib.vision.pipeline import FacePipeline

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces" / "dev"


def still(pipeline: FacePipeline, path: Path) -> np.ndarray | None:
    """The photo's most central face, as the walk-by's ground truth takes it."""
    image = cv2.imread(str(path))
    faces = pipeline.analyze(image).faces
    if not faces:
        return None
    centre = np.array(image.shape[1::-1]) / 2
    return min(faces, key=lambda f: float(np.linalg.norm(
        (f.detection.box[:2] + f.detection.box[2:]) / 2 - centre))).embedding


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("walkby_json", type=Path, help="a walk-by's --json (its plan and result)")
    ap.add_argument("--threshold", type=float, action="append", default=[],
                    help="also count at this threshold (the run's own is always counted)")
    ap.add_argument("--data", type=Path, default=DEV)
    args = ap.parse_args()
    run = json.loads(args.walkby_json.read_text())
    pipeline = build_pipeline(Settings())
    caught = {m["person"] for m in run["missed"]}
    rows = []
    for w in run["plan"]["walkers"]:
        if not w["watchlisted"]:
            continue
        reference = sorted((args.data / w["person"]).glob("*.jpg"))[0]
        ref = assess_reference(pipeline, reference.name, reference.read_bytes())
        probe = still(pipeline, args.data / w["person"] / w["photo"])
        score = float("nan") if ref.embedding is None or probe is None else float(
            ref.embedding @ probe)
        rows.append((score, w["person"], w["person"] not in caught))
    rows.sort()
    threshold = float(run["counters"]["threshold"])
    print(f"{len(rows)} watchlisted walkers; the run caught {sum(r[2] for r in rows)}")
    for t in [threshold, *args.threshold]:
        over = [r for r in rows if r[0] >= t]
        print(f"threshold {t:.4f}: {len(over)} stills reach it (the ceiling); the run caught "
              f"{sum(r[2] for r in over)} of them and {sum(r[2] for r in rows if r[0] < t)} "
              "of those under it")
    print("lowest stills (score, person, caught):")
    for score, person, hit in rows[:15]:
        print(f"  {score:.4f}  {person}  {'caught' if hit else 'missed'}")


if __name__ == "__main__":
    main()
