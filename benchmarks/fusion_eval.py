"""Track fusion against per-frame decisions, on sequences of faces/dev identities (not a test).

Each sequence is one batch: a person "walks" across a 640x360 frame, a different photo of them
in each frame (pose, light and expression change as in a real passing). Gallery: identities with
>= 5 images, enrolled from their first; mated sequences: their next 4 photos; non-mated
sequences: identities with >= 3 images that are not enrolled, up to 4 photos each. Both modes
run the worker's own code (ingest/process.py) and differ only in FusionPolicy.enabled:
  per-frame: every face is decided on its own, an alert if any face of the sequence matches;
  fused:     faces are tracked, each track's best 3 faces are fused and decided once.

    .venv/bin/python benchmarks/fusion_eval.py [--gallery 150] [--threshold T]

T defaults to the fixed fallback threshold of Settings (match_threshold).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces" / "dev"
# How far the person moves between sampled frames: ~1.4 m/s across a frame ~8 m wide at 5 fps.
# (A step wider than the face, as this script once used, breaks every track into single faces
# and compares per-frame decisions with themselves.)
STEP_PX = 30


def sequence_frames(paths: list[Path]) -> list[bytes]:
    out = []
    for i, p in enumerate(paths):
        canvas = np.full((360, 640, 3), 128, np.uint8)
        face = cv2.imread(str(p), cv2.IMREAD_COLOR)
        face = cv2.resize(face, (150, 150)) if face.shape[:2] != (150, 150) else face
        x = 60 + STEP_PX * i
        canvas[100:250, x : x + 150] = face
        ok, buf = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 92])
        out.append(buf.tobytes())
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gallery", type=int, default=150)
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not DEV.exists():
        print(f"skipped: needs {DEV} (internal test data)")
        return 0
    from chalicelib.ingest.batch_format import Frame
    from chalicelib.ingest.process import FusionPolicy, process_frames
    from chalicelib.matching.index import ExactIndex
    from chalicelib.matching.template import EnrollmentError, build_template
    from chalicelib.settings import Settings
    from chalicelib.vision.factory import build_pipeline

    s = Settings()
    if args.threshold is None:
        args.threshold = s.match_threshold
    pipe = build_pipeline(s)
    people = {p.name: sorted(p.glob("*.jpg")) for p in sorted(DEV.iterdir()) if p.is_dir()}
    names = sorted(people)
    random.Random(args.seed).shuffle(names)
    ids, templates = [], []
    for n in (n for n in names if len(people[n]) >= 5):
        if len(ids) >= args.gallery:
            break
        try:
            t = build_template(pipe, [(str(people[n][0]), people[n][0].read_bytes())])
        except EnrollmentError:
            continue
        ids.append(n)
        templates.append(t.embedding)
    index = ExactIndex(ids, np.stack(templates), pipe.model_id)
    enrolled = set(ids)
    sequences = [(n, people[n][1:5]) for n in ids]
    sequences += [(n, people[n][:4]) for n in names if n not in enrolled and len(people[n]) >= 3]
    now = datetime.now(UTC)
    scores: dict[str, list[tuple[str, dict[str, float]]]] = {"per-frame": [], "fused": []}
    embedded = {"per-frame": 0, "fused": 0}
    t0 = time.perf_counter()
    for k, (name, paths) in enumerate(sequences):
        frames = [Frame(i, f"{i}.jpg", now, b) for i, b in enumerate(sequence_frames(paths))]
        for mode, fusion in (("per-frame", FusionPolicy(enabled=False)), ("fused", FusionPolicy())):
            out = process_frames(frames, pipe, index, -1.0, s.max_frame_pixels, fusion)
            scores[mode].append((name, {m.subject_id: m.score for m in out.matches}))
            embedded[mode] += out.faces_embedded
        if k % 100 == 0:
            print(f"  {k}/{len(sequences)} sequences, {time.perf_counter() - t0:.0f} s", flush=True)
    n_mated = len(ids)
    n_non = len(sequences) - n_mated
    print(f"gallery {len(ids)}, mated sequences {n_mated}, non-mated sequences {n_non}, "
          f"frames per sequence <= 4")
    print(f"{'':<10} {'TPIR':>6} {'false alerts':>13} {'FPIR':>7}   "
          f"{'TPIR at FPIR 0.01 (threshold)':>30}   faces embedded")
    for mode, rows in scores.items():
        tp = sum(1 for n, sc in rows if n in enrolled and sc.get(n, -1) >= args.threshold)
        false = sum(1 for n, sc in rows for subj, v in sc.items()
                    if subj != n and v >= args.threshold)
        non_alerted = sum(1 for n, sc in rows if n not in enrolled
                          and any(v >= args.threshold for v in sc.values()))
        # Equal-FPIR comparison: threshold at which 1% of non-mated sequences alert.
        non_max = sorted((max(sc.values(), default=-1) for n, sc in rows if n not in enrolled),
                         reverse=True)
        t01 = non_max[max(0, int(0.01 * len(non_max)) - 1)] + 1e-6
        tp01 = sum(1 for n, sc in rows if n in enrolled and sc.get(n, -1) >= t01
                   and max(sc.values()) == sc[n])
        print(f"{mode:<10} {tp / n_mated:6.3f} {false:13d} {non_alerted / n_non:7.4f}   "
              f"{tp01 / n_mated:23.3f} ({t01:.3f})   {embedded[mode]}")
    print(f"(operating threshold {args.threshold}; {time.perf_counter() - t0:.0f} s)")
    # The same comparison across thresholds: non-mated sequences alerting, mated ones caught.
    print(f"{'threshold':>9}  " + "  ".join(f"{m + ' FPIR':>15} {m + ' TPIR':>15}"
                                           for m in scores))
    for t in (args.threshold - 0.08, args.threshold - 0.04, args.threshold,
              args.threshold + 0.04, args.threshold + 0.08):
        cells = []
        for rows in scores.values():
            fp = sum(1 for n, sc in rows if n not in enrolled
                     and any(v >= t for v in sc.values()))
            tp = sum(1 for n, sc in rows if n in enrolled and sc.get(n, -1) >= t
                     and max(sc.values()) == sc[n])
            cells.append(f"{fp:>9d} ({fp / n_non:.3f}) {tp / n_mated:15.3f}")
        print(f"{t:9.2f}  " + "  ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
