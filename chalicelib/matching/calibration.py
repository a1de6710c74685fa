"""Calibrated open-set decisions: from a target false positive identification rate to a threshold.

The question a deployment asks is: "with this recognizer and a watchlist of N subjects, which
cosine threshold makes at most a fraction F of passers-by who are on no watchlist raise an
alert?" For one non-mated face searched against N templates,

    FPIR(t, N) = P( max_j s_j >= t ),   s_j = cosine(probe, template_j), j = 1..N, all impostors.

Two things make the naive answers wrong:

1. The far tail. With F = 1e-3 and N = 1,000 the per-comparison rate is ~1e-6, and with
   N = 10,000 and F = 1e-4 it is 1e-8: far beyond what a background set of a few thousand faces
   shows directly. A fixed threshold read off an empirical impostor histogram cannot reach it.
2. Correlation across the gallery. A probe's N scores are not independent draws from one
   impostor distribution: some faces ("wolves") sit closer to everybody than others (their mean
   impostor score is higher, or their scores spread more). Treating the N scores as independent
   draws from the pooled distribution gives 1 - (1 - p)^N, which overstates the FPIR (Jensen: the
   function is concave in p) because it spreads the wolves' risk over every probe; thresholds
   become too strict and the system misses people for nothing. Ignoring the tail altogether
   (a Gaussian fit) understates it.

The model (a mixture over probes, each with its own extreme-value tail):

- Every background face i is a probe against every face of the other background identities,
  each other identity weighing the same however many images it has (a watchlist holds one
  template per subject; LFW holds 530 photographs of one man). Probes are weighted the same way,
  so a background identity with many photographs counts as one passer-by, not hundreds.
- Each probe keeps its own impostor score distribution: its scores at survival levels
  BODY_LEVELS (the body), and beyond its own TAIL_LEVEL (5 %) quantile u_i a generalised Pareto
  tail whose scale is the probe's own mean excess over u_i and whose shape xi is pooled over
  all probes (exceedances divided by their probe's mean excess, fitted by probability-weighted
  moments, Hosking & Wallis 1987: the "index flood" method of regional frequency analysis).
  Peaks-over-threshold is what extreme-value theory licenses for extrapolating to 1e-6..1e-9;
  cosine scores are bounded and the fit finds a short tail (xi < 0). Keeping each probe's
  location and scale is what keeps wolves apart. 5 % rather than 1-2 %: with ~500 background
  identities a probe's top 2 % is ~10 identities, and the noise of so few exceedances inflates
  the modelled FPIR (the tail probability is convex in the scale); 10 % reaches too far into
  the body. (Levels 2 %, 5 % and 10 % were compared; 5 % was the one near the target on
  simulated watchlists both in and out of sample.)
- Given the probe, the N gallery scores are independent draws from its own distribution, so

      FPIR(t, N) = sum_i w_i [ 1 - (1 - p_i(t)) ** N ]

  threshold_for() inverts it by bisection (FPIR falls monotonically in t), so the threshold
  rises with N and falls with the target.

Stored (JSON, derived numbers only: no images, no embeddings): per probe 5 quantiles, a mean
excess and a weight; the pooled tail shape; where the background faces came from.

Why templates need not match: a watchlist template is the normalised mean of 1..K reference
embeddings. Against an impostor probe its score has, to first order, the same distribution as a
single-image template's (the mean's variance shrink is undone by the renormalisation), so the
model is fitted with single-image gallery entries and used for any K. The evaluation
(`lfr eval --enroll 3`) checks that this holds.

Validation (chalicelib.evaluation.openset.calibration_check, `lfr calibrate` prints it): draw many
random watchlists of size N from identities, use every face of every other identity as a
non-mated probe, and compare the measured FPIR with the target. The shipped statistics are
checked on identities they were not measured on.

This module is pure numpy (no AWS); stats are plain JSON-able dicts (serialise with json).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = "lfr-impostor-model/1"
STATS_DIR = Path(__file__).resolve().parent / "stats"
# Each probe's impostor scores are kept as quantiles at these survival levels (the body) and,
# beyond its own TAIL_LEVEL quantile, as a generalised Pareto tail.
BODY_LEVELS = (0.9, 0.5, 0.2, 0.1)
TAIL_LEVEL = 0.05
MIN_EXCEEDANCES = 10


# ---------------------------------------------------------------------------------------------
# Generalised Pareto tail


def fit_gpd(exceedances: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, float]:
    """(xi, beta) of a generalised Pareto distribution by probability-weighted moments.

    Survival: (1 + xi * y / beta) ** (-1 / xi) for y >= 0 (exp(-y / beta) when xi == 0).
    PWM is robust for the short tails of bounded scores (xi < 0), where maximum likelihood is
    irregular, and needs no optimiser. Optional weights (e.g. one per background identity).
    """
    y = np.asarray(exceedances, dtype=np.float64)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(y) < 10:
        raise ValueError(f"{len(y)} exceedances: too few to fit a tail")
    order = np.argsort(y, kind="stable")
    y, w = y[order], w[order] / w.sum()
    p = np.cumsum(w) - 0.5 * w  # weighted plotting positions
    a0 = float(np.sum(w * y))
    a1 = float(np.sum(w * y * (1.0 - p)))
    k = a0 / (a0 - 2.0 * a1) - 2.0  # Hosking's k = -xi
    beta = 2.0 * a0 * a1 / (a0 - 2.0 * a1)
    return -k, beta


def gpd_sf(y: np.ndarray, xi: float, beta: float) -> np.ndarray:
    y = np.maximum(np.asarray(y, dtype=np.float64), 0.0)
    if abs(xi) < 1e-9:
        return np.exp(-y / beta)
    base = 1.0 + xi * y / beta
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(base > 0, np.power(np.maximum(base, 1e-300), -1.0 / xi), 0.0)
    return out


# ---------------------------------------------------------------------------------------------
# The model


@dataclass(frozen=True)
class ImpostorModel:
    levels: np.ndarray  # (L,) descending survival levels; levels[-1] is the tail level q
    quantiles: np.ndarray  # (P, L) each probe's impostor score at each level (ascending)
    excess: np.ndarray  # (P,) each probe's mean excess over its own tail start quantiles[:, -1]
    xi: float  # pooled tail shape
    beta: float  # pooled tail scale, in units of each probe's mean excess
    weight: np.ndarray  # (P,) each probe's weight (every background identity weighs the same)

    @property
    def tail_start(self) -> np.ndarray:
        return self.quantiles[:, -1]

    def sf(self, threshold: float) -> np.ndarray:
        """(P,) each probe's P(one impostor score >= threshold)."""
        t = float(threshold)
        q = self.quantiles
        log_levels = np.log10(self.levels)
        out = np.full(len(q), float(self.levels[0]))
        # Body: log-linear between the stored quantiles.
        for k in range(len(self.levels) - 1):
            lo, hi = q[:, k], q[:, k + 1]
            inside = (t > lo) & (t <= hi)
            frac = np.where(hi > lo, (t - lo) / np.maximum(hi - lo, 1e-12), 1.0)
            val = log_levels[k] + frac * (log_levels[k + 1] - log_levels[k])
            out = np.where(inside, np.power(10.0, val), out)
        # Tail: generalised Pareto beyond each probe's own tail start.
        y = (t - self.tail_start) / self.excess
        tail = self.levels[-1] * gpd_sf(y, self.xi, self.beta)
        return np.where(t > self.tail_start, tail, out)

    def fpir(self, threshold: float, gallery_size: int) -> float:
        if gallery_size <= 0:
            return 0.0
        p = np.clip(self.sf(threshold), 0.0, 1.0 - 1e-16)
        return float(np.average(-np.expm1(gallery_size * np.log1p(-p)), weights=self.weight))

    @classmethod
    def from_dict(cls, d: dict) -> ImpostorModel:
        if d.get("format") != FORMAT:
            raise ValueError(f"not an impostor model ({d.get('format')!r}, expected {FORMAT!r})")
        probes, tail = d["probes"], d["tail"]
        return cls(
            levels=np.asarray(probes["levels"], dtype=np.float64),
            quantiles=np.asarray(probes["quantiles"], dtype=np.float64),
            excess=np.asarray(probes["mean_excess"], dtype=np.float64),
            xi=float(tail["xi"]),
            beta=float(tail["beta"]),
            weight=np.asarray(probes.get("weight") or np.ones(len(probes["mean_excess"])),
                              dtype=np.float64),
        )


def _model(stats: dict | ImpostorModel) -> ImpostorModel:
    if isinstance(stats, ImpostorModel):
        return stats
    key = id(stats)
    cached = _CACHE.get(key)
    if cached is not None and cached[0] is stats:
        return cached[1]
    model = ImpostorModel.from_dict(stats)
    if len(_CACHE) > 8:
        _CACHE.clear()
    _CACHE[key] = (stats, model)
    return model


_CACHE: dict[int, tuple[dict, ImpostorModel]] = {}


def expected_fpir(stats: dict | ImpostorModel, threshold: float, gallery_size: int) -> float:
    """Modelled FPIR of one non-mated face searched against a watchlist of gallery_size."""
    return _model(stats).fpir(float(threshold), int(gallery_size))


def threshold_for(stats: dict | ImpostorModel, target_fpir: float, gallery_size: int) -> float:
    """The lowest cosine threshold whose modelled FPIR does not exceed target_fpir.

    Alert when score >= threshold. Monotone: stricter (higher) for a lower target or a larger
    watchlist.
    """
    if not 0.0 < target_fpir < 1.0:
        raise ValueError(f"target FPIR {target_fpir} must be in (0, 1)")
    if gallery_size < 1:
        raise ValueError(f"gallery size {gallery_size} must be at least 1")
    model = _model(stats)
    lo, hi = -1.0, 1.0 + 1e-6  # FPIR(lo) ~ 1 > target >= FPIR(hi)
    if model.fpir(hi, gallery_size) > target_fpir:
        return hi
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if model.fpir(mid, gallery_size) > target_fpir:
            lo = mid
        else:
            hi = mid
    return float(hi)


# ---------------------------------------------------------------------------------------------
# Fitting


def fit_impostor_model(
    embeddings: np.ndarray,
    identities: Sequence[str],
    *,
    model_id: str,
    source: dict | None = None,
    levels: Sequence[float] = BODY_LEVELS,
    tail_level: float = TAIL_LEVEL,
    chunk: int = 512,
) -> dict:
    """Measure the impostor score model on background faces (one L2-normalised row per face).

    Every face is a probe against every face of another identity (impostor: a different
    identity). Returns the JSON-able stats.
    """
    e = np.asarray(embeddings, dtype=np.float32)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    labels = np.unique(np.asarray(identities), return_inverse=True)[1]
    n = len(e)
    if n != len(labels) or len(np.unique(labels)) < 2:
        raise ValueError("need embeddings of at least two identities, one label per row")
    lv = np.array(sorted({*levels, tail_level}, reverse=True), dtype=np.float64)
    if lv[-1] != tail_level:
        raise ValueError("body levels must lie above the tail level")
    # Every other identity weighs the same, however many images it has: a watchlist holds one
    # template per subject, and a background set's prolific identities must not pass for many.
    counts = np.bincount(labels)
    weight_of = 1.0 / counts[labels]
    n_others = len(counts) - 1
    if tail_level * n_others < MIN_EXCEEDANCES:
        raise ValueError(
            f"{len(counts)} background identities are too few for a tail at {tail_level} "
            f"(need {int(np.ceil(MIN_EXCEEDANCES / tail_level)) + 1}); add background faces")
    quantiles = np.empty((n, len(lv)))
    excess = np.empty(n)
    pooled: list[np.ndarray] = []
    pooled_w: list[np.ndarray] = []
    total = 0
    for a in range(0, n, chunk):
        s = (e[a : a + chunk] @ e.T).astype(np.float64)
        impostor = labels[a : a + chunk, None] != labels[None, :]
        order = np.argsort(np.where(impostor, -s, np.inf), axis=1, kind="stable")
        desc = np.take_along_axis(s, order, axis=1)
        w = np.take_along_axis(np.where(impostor, weight_of[None, :], 0.0), order, axis=1)
        cum = np.cumsum(w, axis=1) / n_others  # survival share at or above each score
        rows = np.arange(len(s))
        for j, level in enumerate(lv):
            idx = np.minimum((cum < level).sum(axis=1), s.shape[1] - 1)
            quantiles[a + rows, j] = desc[rows, idx]
        k_tail = (cum < tail_level).sum(axis=1)
        for r in rows:
            k = max(int(k_tail[r]), 1)
            exc = desc[r, :k] - desc[r, k]
            wr = w[r, :k]
            excess[a + r] = max(float(np.average(exc, weights=wr)), 1e-6)
            pooled.append(exc / excess[a + r])
            pooled_w.append(wr / wr.sum())  # each probe's tail weighs the same
        total += int(impostor.sum())
    xi, beta = fit_gpd(np.concatenate(pooled), np.concatenate(pooled_w))
    return {
        "format": FORMAT,
        "model_id": model_id,
        "source": source or {},
        "n_probe_faces": int(n),
        "n_identities": int(labels.max() + 1),
        "n_impostor_scores": int(total),
        "score": "cosine similarity of the pipeline's embeddings (flip-summed, centred, "
                 "L2-normalised), probe face vs single-image gallery entry of another identity",
        "probes": {
            "levels": [float(x) for x in lv],
            "quantiles": [[round(float(x), 5) for x in row] for row in quantiles],
            "mean_excess": [round(float(x), 6) for x in excess],
            "weight": [round(float(x), 6) for x in weight_of],
        },
        "tail": {"xi": round(xi, 6), "beta": round(beta, 6),
                 "method": "per-probe peaks over the probe's own top "
                           f"{tail_level:g}, scaled by its mean excess; pooled generalised "
                           "Pareto fitted by probability-weighted moments (Hosking-Wallis)",
                 "n_exceedances": int(sum(len(x) for x in pooled))},
    }


# ---------------------------------------------------------------------------------------------
# Shipped statistics


def stats_path(model_id: str) -> Path:
    return STATS_DIR / f"{model_id}.json"


@functools.lru_cache(maxsize=8)
def _load_cached(path: str) -> str:
    return Path(path).read_text()


def load_stats(model_id: str, path: str | Path | None = None) -> dict:
    """The impostor statistics shipped for a recognizer (or those at `path`, from
    `lfr calibrate`). Raises FileNotFoundError when the recognizer has none: no calibrated
    decision is possible without them."""
    p = Path(path) if path is not None else stats_path(model_id)
    if not p.exists():
        raise FileNotFoundError(f"no impostor statistics for model {model_id!r} at {p}; "
                                "run `lfr calibrate --background DIR`")
    stats = json.loads(_load_cached(str(p)))
    if stats.get("format") != FORMAT:
        raise ValueError(f"{p}: not an impostor model")
    if stats.get("model_id") != model_id:
        raise ValueError(f"{p} was measured for {stats.get('model_id')!r}, not {model_id!r}")
    return stats


def thresholds_table(
    stats: dict, targets: Sequence[float], sizes: Sequence[int]
) -> list[dict[str, float]]:
    return [
        {"target_fpir": t, "gallery_size": n, "threshold": round(threshold_for(stats, t, n), 5)}
        for t in targets
        for n in sizes
    ]


__all__ = [
    "ImpostorModel",
    "expected_fpir",
    "fit_gpd",
    "fit_impostor_model",
    "gpd_sf",
    "load_stats",
    "threshold_for",
    "thresholds_table",
]
