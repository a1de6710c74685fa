"""What a subject's enrollment will probably catch (pure): expected TPIR from the references.

The threshold a watchlist gets (calibration.py) fixes the false alert rate; what it costs in
catches depends on the subject's template. Measured on background identities (each identity
weighing the same), a template's mated scores depend on:

- **How many reference images it fuses.** At the threshold for 1e-5 with a 10,000-subject list
  (0.57), one image catches about 0.80 of later photos and three about 0.95.
- **For two or three images, how well they agree** (mean cosine between the references): at
  0.57 two images that agree less than the background's lower quartile catch 0.89, the rest
  0.95.
- **Not the reference quality score** (detector score, size, sharpness): on faces/dev it does
  not predict the mated score (correlation -0.11), so it is reported but not used here.

The model keeps, per template size K (1, 2, 3; more counts as 3) and for K >= 2 per agreement
class (below the background's AGREEMENT_QUANTILE of agreement, or not), the share of mated
scores at or above each threshold of a grid. Derived numbers only: no embeddings, no images.
It speaks for a subject like those of the background; the figure is an expectation, not a
promise about one person.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = "lfr-mated-model/1"
GRID = tuple(round(0.30 + 0.005 * i, 3) for i in range(101))  # 0.300 .. 0.800
AGREEMENT_QUANTILE = 0.25
DRAWS = 4  # templates drawn per identity and size: each identity's photos used several ways
LIKELY_MISSED_BELOW = 0.85  # expected TPIR under which the summary flags a subject
SIZES = (1, 2, 3)


def agreement(references: np.ndarray) -> float | None:
    """Mean cosine between a subject's reference embeddings (None with one reference)."""
    e = np.asarray(references, dtype=np.float64).reshape(len(references), -1)
    if len(e) < 2:
        return None
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    sims = e @ e.T
    upper = sims[np.triu_indices(len(e), k=1)]
    return round(float(upper.mean()), 4)


@dataclass(frozen=True)
class MatedModel:
    curves: dict[str, np.ndarray]  # "1", "2-low", "2-high", "3-low", "3-high" -> survival
    agreement_cut: dict[int, float]  # K -> the agreement that splits low from high
    grid: np.ndarray

    @classmethod
    def from_dict(cls, d: dict) -> MatedModel:
        if d.get("format") != FORMAT:
            raise ValueError(f"mated model format {d.get('format')!r}, expected {FORMAT!r}")
        return cls({k: np.asarray(v["survival"], np.float64) for k, v in d["curves"].items()},
                   {int(k): float(v) for k, v in d["agreement_cut"].items()},
                   np.asarray(d["grid"], np.float64))

    def curve_key(self, n_images: int, agreement_: float | None) -> str:
        k = min(max(int(n_images), 1), max(SIZES))
        if k == 1:
            return "1"
        # Unknown agreement (a subject enrolled before it was kept) counts as low: the summary
        # would rather ask for another image than promise a catch.
        low = agreement_ is None or agreement_ < self.agreement_cut[k]
        return f"{k}-{'low' if low else 'high'}"

    def expected_tpir(self, n_images: int, agreement_: float | None, threshold: float) -> float:
        """Share of a subject's later photos expected to score at or above `threshold`."""
        curve = self.curves[self.curve_key(n_images, agreement_)]
        return round(float(np.interp(threshold, self.grid, curve)), 4)


def _survival(scores: np.ndarray, weights: np.ndarray, grid: np.ndarray) -> np.ndarray:
    order = np.argsort(scores)
    s, w = scores[order], weights[order]
    above = np.cumsum(w[::-1])[::-1]  # weight at or above each sorted score
    idx = np.searchsorted(s, grid, side="left")
    total = float(w.sum())
    return np.array([above[i] / total if i < len(s) else 0.0 for i in idx])


def _draw(e: np.ndarray, labels: np.ndarray, k: int, rng: np.random.Generator,
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mated scores of k-image templates against the identity's other photos: (scores, weights,
    agreement of the template each score came from). Each identity weighs the same."""
    scores, weights, agree = [], [], []
    for ident in np.unique(labels):
        rows = np.flatnonzero(labels == ident)
        if len(rows) < k + 1:
            continue
        for _ in range(DRAWS):
            perm = rng.permutation(rows)
            refs, probes = e[perm[:k]], e[perm[k:]]
            t = refs.mean(axis=0)
            t /= max(float(np.linalg.norm(t)), 1e-12)
            a = agreement(refs)
            scores.append(probes @ t)
            weights.append(np.full(len(probes), 1.0 / (len(probes) * DRAWS)))
            agree.append(np.full(len(probes), np.nan if a is None else a))
    return np.concatenate(scores), np.concatenate(weights), np.concatenate(agree)


def fit_mated_model(embeddings: np.ndarray, identities: Sequence[str], *, model_id: str,
                    source: dict | None = None, seed: int = 0) -> dict:
    """Measure the mated score curves on background faces (one L2-normalised row per face,
    the pipeline's labelled face of each photo). Returns the JSON-able model."""
    e = np.asarray(embeddings, dtype=np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    labels = np.unique(np.asarray(identities), return_inverse=True)[1]
    rng = np.random.default_rng(seed)
    grid = np.asarray(GRID)
    curves: dict[str, dict] = {}
    cuts: dict[str, float] = {}
    for k in SIZES:
        s, w, a = _draw(e, labels, k, rng)
        n_ids = int(round(w.sum()))
        if k == 1:
            curves["1"] = {"survival": _rounded(_survival(s, w, grid)), "identities": n_ids}
            continue
        order = np.argsort(a)
        cum = np.cumsum(w[order]) / w.sum()
        cut = float(a[order][np.searchsorted(cum, AGREEMENT_QUANTILE)])
        cuts[str(k)] = round(cut, 4)
        for name, sel in (("low", a < cut), ("high", a >= cut)):
            curves[f"{k}-{name}"] = {"survival": _rounded(_survival(s[sel], w[sel], grid)),
                                     "identities": n_ids}
    return {"format": FORMAT, "model_id": model_id, "source": source or {},
            "grid": list(GRID), "agreement_cut": cuts, "curves": curves,
            "score": "cosine of a later photo's labelled face with the subject's K-image "
                     "template, each background identity weighing the same"}


def _rounded(x: np.ndarray) -> list[float]:
    return [round(float(v), 5) for v in x]


def mated_model_path(stats_dir: Path, model_id: str) -> Path:
    return stats_dir / f"{model_id}.mated.json"


@functools.lru_cache(maxsize=8)
def load_mated_model(stats_dir: Path, model_id: str) -> MatedModel | None:
    """The shipped model of this embedding space, or None where none was measured (a summary
    then says so rather than guess). Read once per container: it is shipped with the code."""
    path = mated_model_path(stats_dir, model_id)
    if not path.exists():
        return None
    return MatedModel.from_dict(json.loads(path.read_text()))
