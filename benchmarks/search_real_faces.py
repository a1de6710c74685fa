"""Does the int8 search give the float32 answer on real faces? A check on faces/dev (issue 12).

    .venv/bin/python benchmarks/search_real_faces.py --data ../shared/data/faces/dev \\
        --workers 2 --cache /tmp/faces-dev.npz

The search's own tests use random and adversarial vectors; this one uses the recognizer's real
embeddings, whose scores crowd together for one person's photos. Gallery: every usable face of
every photo, plus jittered copies of them (Gaussian noise of --jitter per dimension, then
unit length) up to --subjects. Those copies sit within a few hundredths of one another, so
near-ties are everywhere. Probes: every face, searched in batches of 1-64 probes, top-1 and
top-5.

Each search is compared with float64 brute force over the rows the index holds and with the
float32 path (top_k). It prints, for each, the number of probes whose ids or order differ
(0 expected, but for float32 rounding between subjects whose scores are within ~1e-7), the
largest score difference, and which path each batch took. Uses lfr eval's face cache
(--cache: computed once, kept).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--subjects", type=int, nargs="+", default=[17_000, 40_000])
    p.add_argument("--jitter", type=float, default=0.01)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cache", type=Path, default=None)
    args = p.parse_args(argv)

    from threadpoolctl import threadpool_limits

    from chalicelib.evaluation.openset import faces_of_folder
    from chalicelib.matching.index import ExactIndex, top_k, use_coarse

    threadpool_limits(limits=1, user_api="blas")
    identities, faces = faces_of_folder(args.data, args.workers, args.cache)
    real = np.concatenate([f.embeddings for f in faces.values() if f.n]).astype(np.float32)
    print(f"{len(faces)} photos of {len(identities)} people: {len(real)} usable faces")
    rng = np.random.default_rng(0)
    for n in args.subjects:
        base = real[rng.integers(0, len(real), n - len(real))]
        jittered = base + rng.normal(0, args.jitter, base.shape).astype(np.float32)
        gallery = np.concatenate([real, jittered])
        gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
        index = ExactIndex([str(i) for i in range(n)], gallery, "real")
        g64 = index.unit.astype(np.float64)  # the rows it searches (normalised again by it)
        for k in (1, 5):
            for b in (1, 2, 16, 64):
                vs64 = vs32 = checked = 0
                worst = 0.0
                for start in range(0, len(real) - b + 1, b):
                    probes = real[start:start + b]
                    got = index.search(probes, k=k)
                    ids = np.array([[int(c.subject_id) for c in row] for row in got])
                    scores = np.array([[c.score for c in row] for row in got])
                    exact = probes.astype(np.float64) @ g64.T
                    want = np.argsort(-exact, axis=1, kind="stable")[:, :k]
                    f32, _ = top_k(probes, index.blocks, k)
                    vs64 += int(np.sum(np.any(ids != want, axis=1)))
                    vs32 += int(np.sum(np.any(ids != f32, axis=1)))
                    worst = max(worst, float(np.abs(
                        scores - np.take_along_axis(exact, want, axis=1)).max()))
                    checked += b
                path = "int8 + re-score" if use_coarse(n, b, k) and index.coarse else "float32"
                print(f"N={n:,} k={k} B={b}: {path}; {checked} probes; ids or order differ "
                      f"from float64 brute force for {vs64}, from the float32 path for {vs32}; "
                      f"largest score error {worst:.1e}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
