"""Calibration maths on synthetic embeddings: thresholds derived from one set of identities give
the stated FPIR on galleries and probes drawn from other identities."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chalicelib.matching.calibration import (
    MIN_COUNTED,
    Calibration,
    expected_fpir,
    fit_gpd,
    fit_impostor_model,
    gpd_sf,
    operating_point,
    threshold_for,
)
from chalicelib.matching.decision import decide
from chalicelib.matching.index import Candidate

DIM = 24


def synth_faces(rng: np.random.Generator, n_ids: int, per_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit vectors with 'wolves': a shared direction each face leans on by a random
    amount, so some faces are close to everybody (correlated scores across a gallery)."""
    hub = rng.standard_normal(DIM)
    hub /= np.linalg.norm(hub)
    centres = rng.standard_normal((n_ids, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(n_ids), per_id)
    noise = 0.5 * rng.standard_normal((len(labels), DIM)) / np.sqrt(DIM)
    lean = np.abs(rng.standard_normal(len(labels))) * 0.35
    x = centres[labels] + noise + lean[:, None] * hub
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


@pytest.fixture(scope="module")
def fitted() -> dict:
    rng = np.random.default_rng(1)
    emb, labels = synth_faces(rng, 500, 4)
    return fit_impostor_model(emb, [f"id{i}" for i in labels], model_id="synthetic")


def simulate_fpir(threshold_of, sizes, rng, repeats=60, k: int = 1) -> dict[int, float]:
    """Held-out identities: one k-image template each (the mean, as enrollment fuses it), the
    other face of each off-list identity probes."""
    emb, labels = synth_faces(rng, 1200, k + 1)
    per = emb.reshape(1200, k + 1, -1)
    mean = per[:, :k].mean(axis=1)
    templates = mean / np.linalg.norm(mean, axis=1, keepdims=True)
    probes, owner = per[:, k], np.arange(1200)
    sims = probes @ templates.T
    out = {}
    for n in sizes:
        t = threshold_of(n)
        fp = searches = 0
        for _ in range(repeats):
            chosen = rng.choice(len(templates), size=n, replace=False)
            off = ~np.isin(owner, chosen)
            top = sims[np.ix_(off, chosen)].max(axis=1)
            fp += int((top >= t).sum())
            searches += int(off.sum())
        out[n] = fp / searches
    return out


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("target", [0.01, 0.001])
def test_thresholds_hold_the_target_on_held_out_identities(fitted: dict, target: float,
                                                           k: int) -> None:
    # The deployed threshold holds the FPIR near the target (the band is 0.5-2x; on
    # these synthetic faces within 0.4-1.5x), and where the tail was counted not so far below
    # it that catches are given away.
    measured = simulate_fpir(lambda n: threshold_for(fitted, target, {k: n}), [10, 100, 500],
                             np.random.default_rng(7), k=k)
    for n, fpir in measured.items():
        assert fpir <= 1.5 * target, (k, n, fpir / target)
        if n <= 100:
            assert fpir >= 0.4 * target, (k, n, fpir / target)


def test_a_template_of_three_images_has_a_model_of_its_own(fitted: dict) -> None:
    cal = Calibration.from_dict(fitted)
    assert sorted(cal.models) == [1, 2, 3]
    t1 = threshold_for(fitted, 0.001, {1: 500})
    t3 = threshold_for(fitted, 0.001, {3: 500})
    assert t1 != t3
    mixed = threshold_for(fitted, 0.001, {1: 250, 3: 250})
    assert min(t1, t3) <= mixed <= max(t1, t3)
    # Only the size known: the worst template size.
    assert threshold_for(fitted, 0.001, 500) == pytest.approx(max(t1, t3), abs=1e-6)
    # More than 3 images is modelled as 3.
    assert threshold_for(fitted, 0.001, {5: 500}) == pytest.approx(t3)


def test_the_deployed_threshold_is_the_upper_bound(fitted: dict) -> None:
    for n in (100, 1000):
        bound = threshold_for(fitted, 0.001, {1: n})
        point = threshold_for(fitted, 0.001, {1: n}, confidence=None)
        assert bound > point
        cal = Calibration.from_dict(fitted)
        lo, hi = cal.fpir_bounds(bound, {1: n})
        assert lo < cal.fpir(bound, {1: n}) < hi
        assert cal.fpir_upper(bound, {1: n}) <= 0.001


def test_an_operating_point_says_when_it_is_extrapolated(fitted: dict) -> None:
    near = operating_point(fitted, 0.05, {1: 10})
    far = operating_point(fitted, 1e-6, {1: 10_000})
    assert not near.extrapolated and near.counted >= MIN_COUNTED
    assert far.extrapolated and "extrapolated" in far.describe()
    assert near.fpir_low <= near.expected_fpir <= near.fpir_high


def test_model_extrapolates_beyond_background_tail(fitted: dict) -> None:
    # At N = 500 and FPIR 1e-3 the per-comparison rate is ~2e-6: beyond every probe's own
    # empirical quantiles, i.e. decided by the fitted Pareto tail.
    model = Calibration.from_dict(fitted).models[1]
    t = threshold_for(fitted, 0.001, {1: 500})
    assert (t > model.tail_start).mean() > 0.9
    assert -1.0 < model.xi < 0.5


def test_independence_would_be_too_strict(fitted: dict) -> None:
    """Pooling every probe's scores and treating a gallery's N scores as independent draws
    overstates the FPIR of correlated scores (Jensen): the mixture keeps wolves' risk apart."""
    model = Calibration.from_dict(fitted).models[1]
    for n in (100, 1000):
        t = threshold_for(fitted, 0.001, {1: n})
        p_mean = float(np.average(model.sf(t), weights=model.weight))
        pooled = -np.expm1(n * np.log1p(-p_mean))
        assert pooled > model.fpir(t, n)


def test_monotonic_in_target_and_gallery_size(fitted: dict) -> None:
    sizes = [1, 10, 100, 1000, 10_000, 100_000]
    targets = (0.1, 0.01, 0.001, 0.0001, 1e-6)
    # Each threshold once (~0.3 s each): both directions read the same grid.
    grid = {(f, n): threshold_for(fitted, f, n) for f in targets for n in sizes}
    for target in targets[:-1]:
        ts = [grid[target, n] for n in sizes]
        assert all(a < b for a, b in zip(ts, ts[1:], strict=False)), ts
    for n in sizes:
        ts = [grid[f, n] for f in targets]
        assert all(a < b for a, b in zip(ts, ts[1:], strict=False)), ts


def test_threshold_inverts_expected_fpir(fitted: dict) -> None:
    for target, n in [(0.01, 100), (0.001, 500), (1e-4, 20_000)]:
        t = threshold_for(fitted, target, n, confidence=None)
        assert expected_fpir(fitted, t, n) <= target
        assert expected_fpir(fitted, t - 1e-3, n) > target * 0.999


def test_serialisation_round_trip(fitted: dict) -> None:
    again = json.loads(json.dumps(fitted))
    for target, n in [(0.01, 100), (0.001, 500)]:
        assert threshold_for(again, target, n) == pytest.approx(threshold_for(fitted, target, n))
    assert again["model_id"] == "synthetic"
    assert again["n_identities"] == 500
    with pytest.raises(ValueError):
        Calibration.from_dict({**again, "format": "other"})


def test_gpd_fit_recovers_parameters() -> None:
    rng = np.random.default_rng(3)
    xi, beta = -0.2, 0.5
    u = rng.random(20_000)
    y = beta / xi * (u ** (-xi) - 1.0)  # inverse of the survival function
    fxi, fbeta = fit_gpd(y)
    assert fxi == pytest.approx(xi, abs=0.03)
    assert fbeta == pytest.approx(beta, rel=0.05)
    assert gpd_sf(np.array([0.0]), fxi, fbeta)[0] == pytest.approx(1.0)
    # Short tail: nothing beyond the end point.
    assert gpd_sf(np.array([-fbeta / fxi + 0.1]), fxi, fbeta)[0] == 0.0


def test_bad_arguments(fitted: dict) -> None:
    with pytest.raises(ValueError):
        threshold_for(fitted, 0.0, 10)
    with pytest.raises(ValueError):
        threshold_for(fitted, 0.01, 0)
    with pytest.raises(ValueError):
        fit_impostor_model(np.eye(3), ["a", "a", "a"], model_id="x")


def test_decide_top_candidate_at_threshold() -> None:
    a, b = Candidate("a", 0.61), Candidate("b", 0.7)
    assert decide([], 0.5) is None
    assert decide([a, b], 0.5) == b
    assert decide([a, b], 0.7) == b  # score >= threshold alerts
    assert decide([a, b], 0.71) is None
    assert decide([a], 0.62) is None
