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

The model (a per-probe location-scale mixture with an extreme-value tail):

- For every background probe face i (its identity's images are excluded), its scores against
  all background faces of other identities give a location mu_i and a scale sigma_i: how much of
  a wolf this face is. The set {(mu_i, sigma_i)} is kept as an empirical sample (derived
  numbers, no images and no embeddings).
- Standardised scores z = (s - mu_i) / sigma_i are pooled over all probes. Their survival
  function G(z) = P(Z >= z) is kept as an empirical table down to a tail level p_u (1e-3), and
  beyond it as a generalised Pareto distribution fitted to the exceedances over u = G^-1(p_u)
  (probability-weighted moments, Hosking & Wallis 1987): the peaks-over-threshold model of
  extreme-value theory, which is what licenses extrapolation to 1e-6..1e-9. Cosine scores are
  bounded, and the fit usually finds a short tail (xi < 0) with a finite end point.
- Given the probe, the N gallery scores are taken as independent draws from its own
  distribution (mu_i + sigma_i Z). Then

      FPIR(t, N) = mean_i [ 1 - (1 - G((t - mu_i) / sigma_i)) ** N ]

  which keeps the wolves' correlated risk where it belongs. threshold_for() inverts it by
  bisection (FPIR falls monotonically in t), so the threshold rises with N and falls with F.

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
TAIL_P = 1e-3  # survival level beyond which the generalised Pareto tail takes over
_Z_STEP = 0.02  # resolution of the empirical survival table of standardised scores


# ---------------------------------------------------------------------------------------------
# Generalised Pareto tail


def fit_gpd(exceedances: np.ndarray) -> tuple[float, float]:
    """(xi, beta) of a generalised Pareto distribution by probability-weighted moments.

    Survival: (1 + xi * y / beta) ** (-1 / xi) for y >= 0 (exp(-y / beta) when xi == 0).
    PWM is robust for the short tails of bounded scores (xi < 0), where maximum likelihood is
    irregular, and needs no optimiser.
    """
    y = np.sort(np.asarray(exceedances, dtype=np.float64))
    n = len(y)
    if n < 10:
        raise ValueError(f"{n} exceedances: too few to fit a tail")
    p = (np.arange(1, n + 1) - 0.35) / n
    a0 = float(y.mean())
    a1 = float(np.mean(y * (1.0 - p)))
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
    mu: np.ndarray  # (P,) per-probe location of impostor scores
    sigma: np.ndarray  # (P,) per-probe scale
    z_grid: np.ndarray  # ascending standardised scores up to the tail start u
    log10_sf: np.ndarray  # log10 P(Z >= z) at z_grid
    u: float  # tail start
    p_u: float  # P(Z >= u)
    xi: float
    beta: float

    def sf(self, z: np.ndarray) -> np.ndarray:
        """P(Z >= z) for standardised scores."""
        z = np.asarray(z, dtype=np.float64)
        body = np.power(10.0, np.interp(z, self.z_grid, self.log10_sf))
        tail = self.p_u * gpd_sf(z - self.u, self.xi, self.beta)
        return np.where(z > self.u, tail, body)

    def fpir(self, threshold: float, gallery_size: int) -> float:
        if gallery_size <= 0:
            return 0.0
        p = np.clip(self.sf((threshold - self.mu) / self.sigma), 0.0, 1.0)
        with np.errstate(divide="ignore"):
            per_probe = -np.expm1(gallery_size * np.log1p(-np.minimum(p, 1.0 - 1e-16)))
        per_probe = np.where(p >= 1.0, 1.0, per_probe)
        return float(per_probe.mean())

    @classmethod
    def from_dict(cls, d: dict) -> ImpostorModel:
        if d.get("format") != FORMAT:
            raise ValueError(f"not an impostor model ({d.get('format')!r}, expected {FORMAT!r})")
        probes, table, tail = d["probes"], d["z_survival"], d["tail"]
        return cls(
            mu=np.asarray(probes["mu"], dtype=np.float64),
            sigma=np.asarray(probes["sigma"], dtype=np.float64),
            z_grid=np.asarray(table["z"], dtype=np.float64),
            log10_sf=np.asarray(table["log10_sf"], dtype=np.float64),
            u=float(tail["u"]),
            p_u=float(tail["p_u"]),
            xi=float(tail["xi"]),
            beta=float(tail["beta"]),
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
    tail_p: float = TAIL_P,
    chunk: int = 1024,
) -> dict:
    """Measure the impostor score model on background faces (one L2-normalised row per face).

    Every face is a probe against every face of another identity (impostor: a different
    identity). Identities need at least two distinct values. Returns the JSON-able stats.
    """
    e = np.asarray(embeddings, dtype=np.float32)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    labels = np.unique(np.asarray(identities), return_inverse=True)[1]
    n = len(e)
    if n != len(labels) or len(np.unique(labels)) < 2:
        raise ValueError("need embeddings of at least two identities, one label per row")
    edges = np.arange(-12.0, 16.0 + _Z_STEP / 2, _Z_STEP)
    counts = np.zeros(len(edges) + 1, dtype=np.int64)  # counts[k]: z in [edges[k-1], edges[k])
    mu = np.empty(n)
    sigma = np.empty(n)
    high: list[np.ndarray] = []
    total = 0
    for a in range(0, n, chunk):
        s = (e[a : a + chunk] @ e.T).astype(np.float64)
        impostor = labels[a : a + chunk, None] != labels[None, :]
        m = impostor.sum(axis=1)
        if np.any(m < 2):
            raise ValueError("every probe needs impostors")
        mu_c = np.where(impostor, s, 0.0).sum(axis=1) / m
        var = np.where(impostor, (s - mu_c[:, None]) ** 2, 0.0).sum(axis=1) / (m - 1)
        sigma_c = np.sqrt(np.maximum(var, 1e-12))
        mu[a : a + chunk], sigma[a : a + chunk] = mu_c, sigma_c
        z = ((s - mu_c[:, None]) / sigma_c[:, None])[impostor]
        counts += np.bincount(np.searchsorted(edges, z, side="right"), minlength=len(counts))
        high.append(z[z > 2.0])
        total += z.size
    # Empirical survival P(Z >= edges[k]) on the grid.
    sf = (total - np.cumsum(counts)[: len(edges)]) / total  # sf[k] = P(Z >= edges[k])
    zs = np.sort(np.concatenate(high))[::-1]
    k_u = int(round(tail_p * total))
    if k_u < 50 or k_u > len(zs):
        raise ValueError(f"{total} impostor scores are too few for a tail at {tail_p}")
    u = float(zs[k_u - 1])
    p_u = float(np.sum(zs >= u) / total)
    xi, beta = fit_gpd(zs[zs > u] - u)
    keep = (edges <= u) & (sf > 0)
    z_grid, log_sf = edges[keep], np.log10(sf[keep])
    # Diagnostics: empirical tail beyond u against the model, where counts allow.
    checks = []
    for level in (1e-4, 1e-5, 1e-6):
        k = int(round(level * total))
        if k >= 5:
            zq = float(zs[k - 1])
            model_sf = p_u * float(gpd_sf(np.array([zq - u]), xi, beta)[0])
            checks.append({"empirical_sf": level, "z": round(zq, 4),
                           "model_sf": float(f"{model_sf:.4g}")})
    return {
        "format": FORMAT,
        "model_id": model_id,
        "source": source or {},
        "n_probe_faces": int(n),
        "n_identities": int(labels.max() + 1),
        "n_impostor_scores": int(total),
        "score": "cosine similarity of L2-normalised embeddings (flip-summed as the pipeline "
                 "embeds), probe face vs single-image gallery entry of another identity",
        "probes": {
            "mu": [round(float(x), 5) for x in mu],
            "sigma": [round(float(x), 5) for x in sigma],
        },
        "z_survival": {
            "z": [round(float(x), 4) for x in z_grid],
            "log10_sf": [round(float(x), 5) for x in log_sf],
        },
        "tail": {"u": round(u, 5), "p_u": float(f"{p_u:.6g}"), "xi": round(xi, 6),
                 "beta": round(beta, 6), "method": "generalised Pareto, PWM (Hosking-Wallis)",
                 "checks": checks},
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
    "load_stats",
    "threshold_for",
    "thresholds_table",
]
