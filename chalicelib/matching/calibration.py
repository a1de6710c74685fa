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
excess, a weight and the index of its identity (for the bootstrap); the pooled tail shape; per
larger template size its shift and scale; per template size the counts on the grid; where the
background faces came from.

Templates of several images get a model of their own. A template is the normalised mean of
K reference embeddings; it sits nearer its identity's centre than any one photograph, and its
impostor scores are higher and spread wider: measured on identities the model had not seen, a
model fitted on single images let three-image watchlists through at 1.7-2.5x the target. Fitted
probe by probe on K-image templates, the models overshoot the other way (0.0-0.7x): only
identities with K photographs give K-image templates, so each probe's tail rests on fewer
identities, and the noise of so few exceedances inflates the modelled tail (the convexity
noted above). So a K-image model is the single-image model mapped by what the template size
changes, measured pooled over all probes, which needs no per-probe precision: every probe's
tail start moves by `shift` and its scale by `scale` (the medians over probes of the K-image
fit's tail start less `scale` times the single-image one, and of the ratio of their mean
excesses). K = 1, 2 and 3 (`TEMPLATE_SIZES`); a watchlist's FPIR combines them by how many of
its subjects have each K (K > 3 uses 3):

    FPIR(t, N_1, N_2, N_3) = sum_i w_i [ 1 - prod_K (1 - p_i^K(t)) ** N_K ]

The bound, not the estimate. The model is fitted on a few hundred background identities, and
which identities those are moves the far tail: a handful of wolves carries most of it. The
threshold a deployment gets is therefore the one whose FPIR is at most the target at
`CONFIDENCE` (95 %) over a cluster bootstrap of the background identities (each replicate
redraws identities with replacement and keeps all of their faces). Where the data are thin the
bound is wide and the threshold stricter, which is the side a force wants to err on. The point
estimate is reported beside it as the expected rate.

What was counted and what is extrapolated. The stats keep, per K, how many background impostor
scores reach each threshold on a grid: a threshold above which fewer than `MIN_COUNTED` were
seen rests on the fitted tail alone, and every report says so.

Validation (chalicelib.evaluation.openset.calibration_check, `lfr calibrate` prints it): draw many
random watchlists of size N from identities, use every face of every other identity as a
non-mated probe, and compare the measured FPIR with the target. The shipped statistics are
checked on identities they were not measured on.

This module is pure numpy (no AWS); stats are plain JSON-able dicts (serialise with json).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = "lfr-impostor-model/2"
STATS_DIR = Path(__file__).resolve().parent / "stats"
# Each probe's impostor scores are kept as quantiles at these survival levels (the body) and,
# beyond its own TAIL_LEVEL quantile, as a generalised Pareto tail.
BODY_LEVELS = (0.9, 0.5, 0.2, 0.1)
TAIL_LEVEL = 0.05
MIN_EXCEEDANCES = 10
TEMPLATE_SIZES = (1, 2, 3)  # reference images per template; more than 3 uses the 3 model
CONFIDENCE = 0.95  # thresholds keep the FPIR at most the target at this confidence
BOOTSTRAP = 400  # replicates of the background identities
MIN_COUNTED = 10  # fewer background impostor scores than this above a threshold: extrapolated
GRID = tuple(round(0.2 + 0.01 * i, 2) for i in range(61))  # 0.20 .. 0.80, for the counts
# Every public function takes a watchlist as its size (templates of unknown image count: the
# worst template size is assumed) or as {images per template: subjects}.
Gallery = int | Mapping[int, int]


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
    def from_dict(cls, d: dict, levels: Sequence[float], weight: np.ndarray) -> ImpostorModel:
        return cls(
            levels=np.asarray(levels, dtype=np.float64),
            quantiles=np.asarray(d["quantiles"], dtype=np.float64),
            excess=np.asarray(d["mean_excess"], dtype=np.float64),
            xi=float(d["tail"]["xi"]),
            beta=float(d["tail"]["beta"]),
            weight=weight,
        )


@dataclass(frozen=True)
class Calibration:
    """The impostor models of one embedding space, by template size, and their bootstrap."""

    models: dict[int, ImpostorModel]
    weight: np.ndarray  # (P,) each probe's weight
    cluster: np.ndarray  # (P,) each probe's background identity, for the bootstrap
    counted: dict[int, tuple[np.ndarray, np.ndarray, int]]  # K -> (grid, counts >= t, total)

    @functools.cached_property
    def replicates(self) -> np.ndarray:
        """(B, P) probe weights of each bootstrap replicate (identities drawn with
        replacement, all of a drawn identity's faces kept), rows summing to 1. Seeded: the
        same stats give the same thresholds everywhere."""
        rng = np.random.default_rng(20261201)
        n_id = int(self.cluster.max()) + 1
        draws = rng.multinomial(n_id, np.full(n_id, 1.0 / n_id), size=BOOTSTRAP)
        w = draws[:, self.cluster] * self.weight[None, :]
        return (w / w.sum(axis=1, keepdims=True)).astype(np.float64)

    def _mix(self, gallery: Gallery) -> list[dict[int, int]]:
        """The gallery as template-size counts: one mix, or (size only) one per size."""
        top = max(self.models)
        if isinstance(gallery, Mapping):
            mix: dict[int, int] = {}
            for k, n in gallery.items():
                if int(n) > 0:
                    kk = min(max(int(k), 1), top)
                    mix[kk] = mix.get(kk, 0) + int(n)
            return [mix]
        return [{k: int(gallery)} for k in self.models]

    def per_probe(self, threshold: float, gallery: Gallery) -> np.ndarray:
        """(P,) each probe's chance of a false alert against the gallery; where only the size
        is known, the worst template size at this threshold."""
        out = np.zeros(len(self.weight))
        for mix in self._mix(gallery):
            log_none = np.zeros(len(self.weight))
            for k, n in mix.items():
                p = np.clip(self.models[k].sf(threshold), 0.0, 1.0 - 1e-16)
                log_none += n * np.log1p(-p)
            f = -np.expm1(log_none)
            if float(np.dot(self.weight, f)) > float(np.dot(self.weight, out)):
                out = f
        return out

    def fpir(self, threshold: float, gallery: Gallery) -> float:
        """The point estimate."""
        return float(np.dot(self.weight, self.per_probe(threshold, gallery)) / self.weight.sum())

    def fpir_bounds(self, threshold: float, gallery: Gallery,
                    confidence: float = CONFIDENCE) -> tuple[float, float]:
        """Two-sided bootstrap interval at `confidence` (percentile)."""
        reps = self.replicates @ self.per_probe(threshold, gallery)
        a = (1.0 - confidence) / 2.0
        return float(np.quantile(reps, a)), float(np.quantile(reps, 1.0 - a))

    def fpir_upper(self, threshold: float, gallery: Gallery,
                   confidence: float = CONFIDENCE) -> float:
        """One-sided upper bound at `confidence`."""
        reps = self.replicates @ self.per_probe(threshold, gallery)
        return float(np.quantile(reps, confidence))

    def counted_above(self, threshold: float, gallery: Gallery) -> tuple[int, int]:
        """(background impostor scores at or above the threshold, of how many), for the
        template size the gallery leans on most."""
        if isinstance(gallery, Mapping):
            mix = self._mix(gallery)[0]
            k = max(mix, key=lambda kk: mix[kk]) if mix else 1
        else:
            k = max(self.models)
        grid, counts, total = self.counted[k]
        i = int(np.searchsorted(grid, threshold, side="left"))
        return (int(counts[i]) if i < len(counts) else 0), total

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        fmt = d.get("format")
        if fmt == "lfr-impostor-model/1":  # a single-image model: one template size
            probes = d["probes"]
            weight = np.asarray(probes.get("weight") or np.ones(len(probes["mean_excess"])),
                                dtype=np.float64)
            model = ImpostorModel.from_dict({**probes, "tail": d["tail"]}, probes["levels"],
                                            weight)
            cluster = np.asarray(probes.get("identity") or np.arange(len(weight)))
            return cls({1: model}, weight, cluster, {1: (np.asarray(GRID), np.zeros(len(GRID)),
                                                         int(d.get("n_impostor_scores", 0)))})
        if fmt != FORMAT:
            raise ValueError(f"not an impostor model ({fmt!r}, expected {FORMAT!r})")
        probes = d["probes"]
        weight = np.asarray(probes["weight"], dtype=np.float64)
        single = ImpostorModel.from_dict(d["templates"]["1"], probes["levels"], weight)
        models, counted = {}, {}
        for key, m in d["templates"].items():
            k = int(key)
            models[k] = single if k == 1 else _mapped(single, float(m["shift"]),
                                                     float(m["scale"]))
            c = m["counted"]
            counted[k] = (np.asarray(c["grid"]), np.asarray(c["counts"]), int(c["total"]))
        return cls(models, weight, np.asarray(probes["identity"], dtype=np.int64), counted)


def _mapped(single: ImpostorModel, shift: float, scale: float) -> ImpostorModel:
    """A larger template size's model: every probe's scores mapped by shift and scale."""
    return ImpostorModel(single.levels, shift + scale * single.quantiles, scale * single.excess,
                         single.xi, single.beta, single.weight)


def _model(stats: dict | Calibration) -> Calibration:
    if isinstance(stats, Calibration):
        return stats
    key = id(stats)
    cached = _CACHE.get(key)
    if cached is not None and cached[0] is stats:
        return cached[1]
    model = Calibration.from_dict(stats)
    if len(_CACHE) > 8:
        _CACHE.clear()
    _CACHE[key] = (stats, model)
    return model


_CACHE: dict[int, tuple[dict, Calibration]] = {}


def as_calibration(stats: dict | Calibration) -> Calibration:
    """The models of a stats document (parsed once per document)."""
    return _model(stats)


def expected_fpir(stats: dict | Calibration, threshold: float, gallery: Gallery) -> float:
    """Modelled FPIR (point estimate) of one non-mated face searched against the gallery."""
    return _model(stats).fpir(float(threshold), gallery)


def threshold_for(stats: dict | Calibration, target_fpir: float, gallery: Gallery,
                  confidence: float | None = CONFIDENCE) -> float:
    """The lowest cosine threshold whose FPIR is at most `target_fpir`: its upper bound at
    `confidence` (the deployed rule), or the point estimate when `confidence` is None.

    Alert when score >= threshold. Monotone: stricter (higher) for a lower target or a larger
    watchlist.
    """
    if not 0.0 < target_fpir < 1.0:
        raise ValueError(f"target FPIR {target_fpir} must be in (0, 1)")
    size = sum(gallery.values()) if isinstance(gallery, Mapping) else int(gallery)
    if size < 1:
        raise ValueError(f"gallery size {size} must be at least 1")
    model = _model(stats)

    def rate(t: float) -> float:
        return model.fpir(t, gallery) if confidence is None else model.fpir_upper(
            t, gallery, confidence)

    lo, hi = -1.0, 1.0 + 1e-6  # FPIR(lo) ~ 1 > target >= FPIR(hi)
    if rate(hi) > target_fpir:
        return hi
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if rate(mid) > target_fpir:
            lo = mid
        else:
            hi = mid
    return float(hi)


@dataclass(frozen=True)
class OperatingPoint:
    """What a threshold means for one watchlist: the rates a force can publish."""

    target_fpir: float
    threshold: float
    expected_fpir: float  # point estimate
    fpir_low: float  # 95 % bootstrap interval
    fpir_high: float
    counted: int  # background impostor scores at or above the threshold
    of_scores: int

    @property
    def extrapolated(self) -> bool:
        return self.counted < MIN_COUNTED

    @property
    def checked_on_unseen(self) -> bool:
        return checked_on_unseen(self.target_fpir)

    def describe(self) -> str:
        basis = (f"extrapolated by the fitted tail: {self.counted} of {self.of_scores:,} "
                 "background impostor scores reach it" if self.extrapolated else
                 f"counted: {self.counted} of {self.of_scores:,} background impostor scores "
                 "reach it")
        return (f"target {self.target_fpir:g}: threshold {self.threshold:.4f}, expected FPIR "
                f"{self.expected_fpir:.2g} (95% {self.fpir_low:.2g}-{self.fpir_high:.2g}); "
                f"{basis}; {unseen_basis(self.target_fpir)}")


# The held-out check (docs/accuracy.md, "Calibration holds on identities it never saw";
# benchmarks/calibration_table.py): measured FPIR as a ratio to the target on identities the
# model was not fitted on, over seeds 0-2, one and three references, N = 50 to 400. Below the
# lowest target here the check's labelled background is too small to judge (at 1e-4 a cell
# rests on a handful of identities or none): a rate that low is the impostor model's alone.
HELD_OUT_RATIO = {1e-2: (0.81, 1.26), 1e-3: (0.39, 2.07)}


def checked_on_unseen(target_fpir: float) -> bool:
    return target_fpir >= min(HELD_OUT_RATIO)


def unseen_basis(target_fpir: float) -> str:
    """Whether a target's rate was measured on identities the model never saw, in words."""
    if not checked_on_unseen(target_fpir):
        return (f"not checked on identities the model never saw (the held-out check reaches "
                f"{min(HELD_OUT_RATIO):g}): a rate extrapolated from the impostor model, not "
                "measured")
    checked = max(t for t in HELD_OUT_RATIO if t <= target_fpir)
    lo, hi = HELD_OUT_RATIO[checked]
    return (f"measured on identities the model never saw at {checked:g}: {lo:g}-{hi:g}x the "
            "target")


def operating_point(stats: dict | Calibration, target_fpir: float,
                    gallery: Gallery) -> OperatingPoint:
    model = _model(stats)
    t = threshold_for(model, target_fpir, gallery)
    lo, hi = model.fpir_bounds(t, gallery)
    counted, total = model.counted_above(t, gallery)
    return OperatingPoint(target_fpir, round(t, 6), model.fpir(t, gallery), lo, hi, counted,
                          total)


# The rates a force compares against: 1 in 1,000, 10,000 and 100,000 passers-by, and the Met's
# 2024-25 live deployments (10 false alerts in 3,147,436 faces scanned).
MET_RATE = 10 / 3_147_436
POLICE_TARGETS = (1e-3, 1e-4, 1e-5, MET_RATE)
# The default a deployment gets when it states none (docs/accuracy.md, "Operating points").
DEFAULT_TARGET_FPIR = 1e-5


# ---------------------------------------------------------------------------------------------
# Fitting


def _templates(e: np.ndarray, labels: np.ndarray, k: int, rng: np.random.Generator,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gallery entries of k-image templates, as enrollment fuses them: each identity with at
    least k faces gives floor(n / k) disjoint templates, weighing 1 between them."""
    if k == 1:
        counts = np.bincount(labels)
        return e, labels, 1.0 / counts[labels]
    out, lab, w = [], [], []
    for ident in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == ident))
        m = len(rows) // k
        for g in range(m):
            group = e[rows[g * k : (g + 1) * k]]
            mean = group.mean(axis=0)
            out.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
            lab.append(ident)
            w.append(1.0 / m)
    return np.asarray(out, np.float32), np.asarray(lab), np.asarray(w)


def _fit_size(e: np.ndarray, labels: np.ndarray, gallery: np.ndarray, g_labels: np.ndarray,
              g_weight: np.ndarray, lv: np.ndarray, tail_level: float, chunk: int) -> dict:
    """Each probe's impostor distribution against one kind of gallery entry."""
    n = len(e)
    n_gallery_ids = len(np.unique(g_labels))
    quantiles = np.empty((n, len(lv)))
    excess = np.empty(n)
    pooled: list[np.ndarray] = []
    pooled_w: list[np.ndarray] = []
    grid = np.asarray(GRID)
    counts = np.zeros(len(grid), np.int64)
    total = 0
    for a in range(0, n, chunk):
        s = (e[a : a + chunk] @ gallery.T).astype(np.float64)
        impostor = labels[a : a + chunk, None] != g_labels[None, :]
        n_others = n_gallery_ids - np.isin(labels[a : a + chunk], g_labels).astype(int)
        order = np.argsort(np.where(impostor, -s, np.inf), axis=1, kind="stable")
        desc = np.take_along_axis(s, order, axis=1)
        w = np.take_along_axis(np.where(impostor, g_weight[None, :], 0.0), order, axis=1)
        cum = np.cumsum(w, axis=1) / n_others[:, None]  # survival share at or above a score
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
        imp = np.sort(s[impostor])
        counts += len(imp) - np.searchsorted(imp, grid, side="left")
        total += int(impostor.sum())
    xi, beta = fit_gpd(np.concatenate(pooled), np.concatenate(pooled_w))
    return {
        "quantiles": [[round(float(x), 5) for x in row] for row in quantiles],
        "mean_excess": [round(float(x), 6) for x in excess],
        "tail": {"xi": round(xi, 6), "beta": round(beta, 6),
                 "n_exceedances": int(sum(len(x) for x in pooled))},
        "n_gallery_identities": int(n_gallery_ids),
        "n_gallery_entries": int(len(gallery)),
        "counted": {"grid": list(GRID), "counts": [int(c) for c in counts], "total": total},
    }


def fit_impostor_model(
    embeddings: np.ndarray,
    identities: Sequence[str],
    *,
    model_id: str,
    source: dict | None = None,
    levels: Sequence[float] = BODY_LEVELS,
    tail_level: float = TAIL_LEVEL,
    template_sizes: Sequence[int] = TEMPLATE_SIZES,
    chunk: int = 512,
    seed: int = 0,
) -> dict:
    """Measure the impostor score models on background faces (one L2-normalised row per
    face): every face is a probe against every gallery entry of another identity, for each
    template size. Returns the JSON-able stats."""
    e, labels = _labelled_faces(embeddings, identities)
    lv = np.array(sorted({*levels, tail_level}, reverse=True), dtype=np.float64)
    if lv[-1] != tail_level:
        raise ValueError("body levels must lie above the tail level")
    rng = np.random.default_rng(seed)  # draws each size's templates, in order of size
    fitted: dict[str, dict] = {}
    for k in sorted(set(template_sizes) | {1}):
        gallery, g_labels, g_weight = _templates(e, labels, k, rng)
        _check_tail_identities(len(np.unique(g_labels)), k, tail_level)
        got = _fit_size(e, labels, gallery, g_labels, g_weight, lv, tail_level, chunk)
        fitted[str(k)] = got if k == 1 else _relative_to_single(got, fitted["1"])
    counts = np.bincount(labels)
    return {
        "format": FORMAT,
        "model_id": model_id,
        "source": source or {},
        "n_probe_faces": int(len(e)),
        "n_identities": int(labels.max() + 1),
        "score": "cosine similarity of the pipeline's embeddings (flip-summed, centred, "
                 "L2-normalised), probe face vs a K-image fused template of another identity",
        "tail_method": "per-probe peaks over the probe's own top "
                       f"{tail_level:g}, scaled by its mean excess; pooled generalised Pareto "
                       "fitted by probability-weighted moments (Hosking-Wallis)",
        "probes": {
            "levels": [float(x) for x in lv],
            "weight": [round(float(x), 6) for x in 1.0 / counts[labels]],
            "identity": [int(x) for x in labels],
        },
        "templates": fitted,
    }


def _labelled_faces(embeddings: np.ndarray, identities: Sequence[str],
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Rows L2-normalised as float32, and each row's identity as an index."""
    e = np.asarray(embeddings, dtype=np.float32)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    labels = np.unique(np.asarray(identities), return_inverse=True)[1]
    if len(e) != len(labels) or len(np.unique(labels)) < 2:
        raise ValueError("need embeddings of at least two identities, one label per row")
    return e, labels


def _check_tail_identities(n_ids: int, k: int, tail_level: float) -> None:
    """A probe's tail is its top `tail_level` of the other identities: too few of them give
    too few exceedances to fit."""
    if tail_level * (n_ids - 1) < MIN_EXCEEDANCES:
        raise ValueError(
            f"{n_ids} background identities have {k} faces: too few for a tail at "
            f"{tail_level} (need {int(np.ceil(MIN_EXCEEDANCES / tail_level)) + 1})")


def _relative_to_single(got: dict, one: dict) -> dict:
    """A larger template size kept as what it does to each probe's single-image tail (pooled
    over probes: a scale of the mean excess and a shift of the tail quantile)."""
    scale = float(np.median(np.asarray(got["mean_excess"]) / np.asarray(one["mean_excess"])))
    shift = float(np.median(np.asarray(got["quantiles"])[:, -1]
                            - scale * np.asarray(one["quantiles"])[:, -1]))
    return {"shift": round(shift, 6), "scale": round(scale, 6),
            "n_gallery_identities": got["n_gallery_identities"],
            "n_gallery_entries": got["n_gallery_entries"],
            "counted": got["counted"]}


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
    if stats.get("format") not in (FORMAT, "lfr-impostor-model/1"):
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
    "Calibration",
    "as_calibration",
    "ImpostorModel",
    "OperatingPoint",
    "expected_fpir",
    "fit_gpd",
    "fit_impostor_model",
    "gpd_sf",
    "load_stats",
    "operating_point",
    "threshold_for",
    "thresholds_table",
]
