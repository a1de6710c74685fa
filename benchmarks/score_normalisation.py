"""Score normalisation per subject (Z-norm) and per probe (T-norm) against raw cosine (not a
test): prints figures, asserts nothing. Issue 23, lever 2.

Background statistics (mean and covariance of the labelled faces, each identity weighing the
same) come from the stats half of faces/dev. The holdout half gives one reference per identity
with two or more photos, its other photos as mated probes, every other pair an impostor. For
each rule: the true match rate at per-pair false match rates 1e-3 .. 2e-6, the far tail that a
10,000-subject list at 1e-5 reaches. "-emp" rules use the holdout's own impostor scores (an
oracle no deployment has); "-gallery" uses the probe's scores against the whole gallery.
    .venv/bin/python benchmarks/score_normalisation.py [--seed 0] [--cache /tmp/faces-dev.npz]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from chalicelib.evaluation.openset import faces_of_folder, name_half

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces" / "dev"
FMRS = (1e-3, 1e-4, 1e-5, 2e-6)


def labelled(data: Path, cache: Path | None) -> dict[int, list[np.ndarray]]:
    """Per half, one array of labelled-face embeddings per identity."""
    identities, faces = faces_of_folder(data, 2, cache)
    halves: dict[int, list[np.ndarray]] = {0: [], 1: []}
    for name, paths in identities.items():
        rows = [faces[str(p)].embeddings[i] for p in paths
                if (i := faces[str(p)].central()) is not None]
        if rows:
            halves[name_half(name)].append(np.stack(rows))
    return halves


def background(people: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance, each identity weighing the same."""
    e = np.concatenate(people)
    w = np.concatenate([np.full(len(r), 1.0 / len(r)) for r in people])
    w /= w.sum()
    m = (e * w[:, None]).sum(0)
    return m, ((e - m).T * w) @ (e - m)


def pairs(people: list[np.ndarray], rng: np.random.Generator,
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gallery (one photo of each identity with two or more), probes, and the mated mask."""
    gallery, g_id, probes, p_id = [], [], [], []
    for k, rows in enumerate(people):
        perm = rng.permutation(len(rows))
        if len(rows) >= 2:
            gallery.append(rows[perm[0]])
            g_id.append(k)
        rest = rows[perm[1:]] if len(rows) >= 2 else rows
        probes.extend(rest)
        p_id.extend([k] * len(rest))
    g, p = np.stack(gallery), np.stack(probes)
    return g, p, np.asarray(p_id)[:, None] == np.asarray(g_id)[None, :]


def tmr_at(scores: np.ndarray, mated: np.ndarray) -> list[str]:
    impostor = np.sort(scores[~mated])[::-1]
    out = []
    for f in FMRS:
        t = impostor[max(int(f * len(impostor)), 1) - 1]
        out.append(f"{f:.0e}: {float((scores[mated] > t).mean()):.4f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEV)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    halves = labelled(args.data, args.cache)
    m, cov = background(halves[0])
    g, p, mated = pairs(halves[1], np.random.default_rng(args.seed))
    s = p @ g.T
    impostor = np.where(mated, np.nan, s)

    def spread(x: np.ndarray) -> np.ndarray:
        return np.sqrt(np.einsum("ij,jk,ik->i", x, cov, x))

    rules = {
        "raw": s,
        "znorm-cov": (s - g @ m) / spread(g),
        "znorm-emp": (s - np.nanmean(impostor, 0)) / np.nanstd(impostor, 0),
        "tnorm-cov": (s - (p @ m)[:, None]) / spread(p)[:, None],
        "tnorm-emp": ((s - np.nanmean(impostor, 1)[:, None])
                      / np.nanstd(impostor, 1)[:, None]),
        "tnorm-gallery": (s - s.mean(1)[:, None]) / s.std(1)[:, None],
    }
    print(f"seed {args.seed}: {int(mated.sum())} mated pairs, {int((~mated).sum())} impostor "
          f"pairs; spread of impostor scores per subject from the covariance "
          f"{spread(g).min():.3f}-{spread(g).max():.3f}")
    for name, scores in rules.items():
        print(f"{name:<14} TMR at FMR " + "  ".join(tmr_at(scores, mated)))


if __name__ == "__main__":
    main()
