"""The int8 shortlist of batch search (issue 12): its bound holds, and top-k stays exact."""

from __future__ import annotations

import numpy as np
import pytest

from chalicelib.matching import coarse
from chalicelib.matching import index as index_module
from chalicelib.matching.index import BLOCK, ExactIndex, top_k

pytestmark = pytest.mark.skipif(not coarse.available(), reason="needs onnxruntime")


@pytest.fixture(autouse=True, params=[coarse.SAFE_LEVELS, coarse.FULL_LEVELS])
def _int8_from_any_size(request, monkeypatch) -> None:
    """These tests exercise the int8 path on a few blocks and batches of any size
    (tests/unit/test_search_gate.py checks the real gate), with 7-bit and, where this machine's
    kernel is exact for them, 8-bit templates."""
    if request.param > coarse.template_levels():
        pytest.skip("this onnxruntime's int8 kernel saturates 8-bit templates")
    monkeypatch.setattr(coarse, "template_levels", lambda: request.param)
    monkeypatch.setattr(index_module, "COARSE_MIN_SUBJECTS", 1)
    monkeypatch.setattr(index_module, "COARSE_MIN_SCORES", 1)


def _units(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, 128))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _exact_top(templates: np.ndarray, probes: np.ndarray, k: int) -> np.ndarray:
    """Brute force in float64: score descending, then position."""
    scores = probes.astype(np.float64) @ templates.T.astype(np.float64)
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def _integer_scores(scorer: coarse.CoarseScorer, q: coarse.Quantised) -> np.ndarray:
    """(probes, subjects) integer scores, without the last session's padding."""
    ints = np.concatenate([y for _, y in scorer.blocks(q.u8)], axis=1)
    assert np.all(ints[:, scorer.subjects:] == np.iinfo(np.int32).min)  # masked, never a score
    return ints[:, :scorer.subjects]


def _near_ties(rng: np.random.Generator, n: int, gap: float) -> np.ndarray:
    """Unit templates whose scores with probe 0 (the first basis vector, mixed below) differ by
    `gap` (far below one int8 step, ~0.005), in shuffled order: the integer scores cannot rank
    them, the exact re-score must."""
    first = 0.6 + gap * rng.permutation(n)
    rest = _units(rng, n).astype(np.float64)[:, 1:]
    rest *= (np.sqrt(1 - first**2) / np.linalg.norm(rest, axis=1))[:, None]
    return np.concatenate([first[:, None], rest], axis=1).astype(np.float32)


def test_the_bound_holds_for_every_score() -> None:
    """|float32 score - step x integer score| <= bound, over random and peaked vectors."""
    rng = np.random.default_rng(0)
    templates = _units(rng, 5000)
    templates[:10] = np.eye(128, dtype=np.float32)[:10]  # all weight on one entry
    templates[10:20] = 1 / np.sqrt(128)  # flat
    probes = np.concatenate([_units(rng, 6), np.eye(128, dtype=np.float32)[:1],
                             np.full((1, 128), 1 / np.sqrt(128), np.float32)])
    scorer = coarse.CoarseScorer(templates, width=2048)
    q = scorer.quantise(probes)
    ints = _integer_scores(scorer, q).astype(np.float64)
    err = np.abs(probes @ templates.T - q.step[:, None] * ints)
    assert np.all(err <= q.bound[:, None])
    assert np.all(q.window >= 2 * q.bound / q.step)
    assert err.max() > 1e-3  # the integer scores really are approximate


@pytest.mark.parametrize("k", [1, 5, 20])
@pytest.mark.parametrize("b", [2, 7, 16])
def test_random_batches_match_brute_force(k: int, b: int) -> None:
    rng = np.random.default_rng(100 * k + b)
    n = 3 * BLOCK + 777
    templates, probes = _units(rng, n), _units(rng, b)
    index = ExactIndex([f"s{i}" for i in range(n)], templates, "m")
    got = index.search(probes, k=k)
    assert index.coarse is not None  # this batch went through the int8 shortlist
    want = _exact_top(index.templates, probes, k)
    assert [[c.subject_id for c in row] for row in got] == [[f"s{j}" for j in w] for w in want]
    scores = probes @ index.templates.T
    for row, w, s in zip(got, want, scores, strict=True):
        np.testing.assert_allclose([c.score for c in row], s[w], atol=1e-6)


@pytest.mark.parametrize("k", [1, 3, 50])
def test_near_ties_below_the_int8_step_rank_exactly(k: int, monkeypatch) -> None:
    """Scores 2e-5 apart: the integer top k differs from the exact one, the search's does not.

    Sessions of one 8192-subject block each, so the running threshold and the pruning of held
    candidates (thousands here, all within the window) are exercised across blocks.
    """
    monkeypatch.setattr(coarse, "COARSE_BLOCK", BLOCK)
    rng = np.random.default_rng(k)
    n = 2 * BLOCK + 500
    templates = _near_ties(rng, n, gap=2e-5)
    probes = np.zeros((4, 128), np.float32)
    probes[0, 0] = 1
    probes[1] = templates[n // 2]  # a template: its own score is 1, the rest near-tied
    probes[2:] = _units(rng, 2) * 0.1
    probes[2:, 0] = 1
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    index = ExactIndex([str(i) for i in range(n)], templates, "m")
    got = [[int(c.subject_id) for c in row] for row in index.search(probes, k=k)]
    want = _exact_top(templates, probes, k)
    assert got == want.tolist()
    ints = _integer_scores(index.coarse, index.coarse.quantise(probes))
    by_int = np.argsort(-ints, axis=1, kind="stable")[:, :k]
    assert not np.array_equal(by_int, want)  # the integers alone get it wrong


def test_exact_ties_rank_by_position_through_the_shortlist() -> None:
    """Copies of one template over several sessions: equal float32 scores, earliest first."""
    rng = np.random.default_rng(5)
    n = 3 * BLOCK
    templates = _units(rng, n)
    copies = [3, BLOCK + 1, 2 * BLOCK + 2, n - 1]
    templates[copies] = templates[3]
    probes = np.stack([templates[3], templates[3] * 0.8 + templates[9] * 0.2])
    index = ExactIndex([str(i) for i in range(n)], templates, "m")
    got = index.search(probes / np.linalg.norm(probes, axis=1, keepdims=True), k=6)
    assert [int(c.subject_id) for c in got[0][:4]] == copies
    assert [int(c.subject_id) for c in got[1][:4]] == copies


def test_without_onnxruntime_batches_use_float32(monkeypatch) -> None:
    monkeypatch.setattr(coarse, "available", lambda: False)
    rng = np.random.default_rng(2)
    n = BLOCK + 99
    templates, probes = _units(rng, n), _units(rng, 8)
    index = ExactIndex([str(i) for i in range(n)], templates, "m")
    got = index.search(probes, k=3)
    assert index.coarse is None
    want, _ = top_k(probes, index.blocks, 3)
    assert [[int(c.subject_id) for c in row] for row in got] == want.tolist()


@pytest.mark.parametrize("n", [1, 300, 2 * coarse.SEGMENT])
def test_the_padding_of_the_last_session_is_never_a_subject(n: int) -> None:
    """Every real score negative (padding, were it scored, would be 0 and win): all n subjects
    come back in exact order, none past the last."""
    rng = np.random.default_rng(n)
    templates = _units(rng, n)
    templates[:, 0] = np.abs(templates[:, 0]) + 0.5
    templates /= np.linalg.norm(templates, axis=1, keepdims=True)
    probes = -np.eye(128, dtype=np.float32)[:3]
    index = ExactIndex([str(i) for i in range(n)], templates, "m")
    for k in (1, n):
        got = [[int(c.subject_id) for c in row] for row in index.search(probes, k=k)]
        assert got == _exact_top(templates, probes, k).tolist()
    assert index.coarse is not None


def test_a_session_width_must_be_whole_segments() -> None:
    with pytest.raises(ValueError, match="multiple of"):
        coarse.CoarseScorer(_units(np.random.default_rng(0), 10), width=coarse.SEGMENT + 1)



def test_a_shortlist_too_short_is_never_trusted(monkeypatch, caplog) -> None:
    """Were the shortlist ever to miss subjects (it cannot: the proof in _search_coarse), the
    search falls back to float32 rather than rank from the next probe's candidates."""
    rng = np.random.default_rng(9)
    n = BLOCK + 5
    templates, probes = _units(rng, n), _units(rng, 4)
    index = ExactIndex([str(i) for i in range(n)], templates, "m")
    real = coarse.shortlist

    def short(scorer, p, k):  # drop every candidate of probe 2
        rows, cols = real(scorer, p, k)
        return rows[rows != 2], cols[rows != 2]

    monkeypatch.setattr(coarse, "shortlist", short)
    got = [[int(c.subject_id) for c in row] for row in index.search(probes, k=3)]
    assert got == _exact_top(templates, probes, 3).tolist()
    assert "shorter than k" in caplog.text


def test_neighbours_within_float32_rounding_rank_as_exact_arithmetic() -> None:
    """Copies of one template jittered by ~1e-7: one float32 summation order ranks them
    differently from another; the re-score ranks them as float64 brute force does (found on
    real faces by benchmarks/search_real_faces.py)."""
    rng = np.random.default_rng(11)
    n = 3000
    templates = _units(rng, n)
    centre = templates[0].astype(np.float64)
    jitter = rng.normal(0, 3e-7, (200, 128))
    near = centre + jitter
    templates[:200] = (near / np.linalg.norm(near, axis=1, keepdims=True)).astype(np.float32)
    probes = templates[:4] + 0.01 * _units(rng, 4)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    index = ExactIndex([str(i) for i in range(n)], templates, "m")
    got = [[int(c.subject_id) for c in row] for row in index.search(probes, k=50)]
    assert got == _exact_top(index.unit, probes, 50).tolist()
