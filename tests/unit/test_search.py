"""1:N search (issue 12): the blocked search returns what the whole-matrix search returned."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from chalicelib.matching.blas import limit_blas_threads
from chalicelib.matching.index import BLOCK, ExactIndex, column_blocks, top_k
from chalicelib.runtime import Runtime
from chalicelib.settings import Settings


def _units(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, 128)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _original(templates: np.ndarray, probes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The search before issue 12: the whole score matrix, argpartition, then argsort."""
    scores = probes @ templates.T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), 1), 1)
    return order, np.take_along_axis(scores, order, 1)


def _by_score_then_index(scores: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("b", [1, 3, 9])  # one probe; one product per probe; one sgemm
@pytest.mark.parametrize("k", [1, 2, 5, 20])
def test_same_top_k_as_the_original_search_across_blocks(k: int, b: int) -> None:
    rng = np.random.default_rng(k)
    n = 2 * BLOCK + 1234  # three blocks, the last one partial
    templates, probes = _units(rng, n), _units(rng, b)
    index = ExactIndex([f"s{i}" for i in range(n)], templates, "m")
    got = index.search(probes, k=k)
    want_i, want_v = _original(index.templates, probes, k)
    for row, wi, wv in zip(got, want_i, want_v, strict=True):
        assert [c.subject_id for c in row] == [f"s{j}" for j in wi]
        np.testing.assert_allclose([c.score for c in row], wv, atol=1e-5)


def test_a_probe_that_is_a_template_finds_it_first() -> None:
    rng = np.random.default_rng(0)
    templates = _units(rng, 3000)
    index = ExactIndex([str(i) for i in range(3000)], templates, "m")
    got = index.search(templates[[5, 2999, 1500]], k=3)
    assert [r[0].subject_id for r in got] == ["5", "2999", "1500"]
    assert all(abs(r[0].score - 1.0) < 1e-5 for r in got)


def _dyadic(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit vectors of four entries +-0.5: every score with a dyadic probe is exact in float32,
    whatever order BLAS sums in, so ties are real ties."""
    t = np.zeros((n, 128), np.float32)
    for row in t:
        row[rng.choice(128, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
    return t


@pytest.mark.parametrize("block", [1, 7, 64, BLOCK])
@pytest.mark.parametrize("k", [1, 3, 10, 300])
def test_ties_rank_by_position_earlier_first(block: int, k: int) -> None:
    rng = np.random.default_rng(block * 1000 + k)
    templates = _dyadic(rng, 300)
    templates[200:230] = templates[10]  # thirty copies of one subject, scattered over blocks
    probes = rng.integers(-4, 5, size=(6, 128)).astype(np.float32) / 8
    probes[0] = 0  # every score 0: the first k subjects
    probes[1] = templates[10]  # its 31 copies tie at the top
    exact = probes.astype(np.float64) @ templates.T.astype(np.float64)
    idx, val = top_k(probes, column_blocks(templates, block), k)
    want = _by_score_then_index(exact, k)
    np.testing.assert_array_equal(idx, want)
    np.testing.assert_array_equal(val, np.take_along_axis(exact, want, 1).astype(np.float32))
    assert list(idx[0]) == list(range(k))
    assert list(idx[1][:min(k, 31)]) == ([10, *range(200, 230)])[:k]
    few, _ = top_k(probes[:3], column_blocks(templates, block), k)  # one product per probe
    np.testing.assert_array_equal(few, want[:3])


@pytest.mark.parametrize("k", [1, 4])
def test_scores_rising_with_position_every_block_has_new_best(k: int) -> None:
    """The worst order for a running threshold: each block beats everything before it."""
    rng = np.random.default_rng(3)
    templates = _units(rng, 5000)
    probe = _units(rng, 1)
    templates = templates[np.argsort(templates @ probe[0])]
    idx, _ = top_k(probe, column_blocks(templates, 256), k)
    assert list(idx[0]) == list(range(4999, 4999 - k, -1))


def test_k_beyond_the_watchlist_and_empty_inputs() -> None:
    rng = np.random.default_rng(1)
    index = ExactIndex(["a", "b", "c"], _units(rng, 3), "m")
    assert len(index.search(_units(rng, 2), k=10)[1]) == 3
    assert index.search(np.zeros((0, 128), np.float32)) == []
    assert ExactIndex([], np.zeros((0, 128)), "m").search(_units(rng, 2), k=5) == [[], []]


def _blas_threads() -> set[int]:
    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def test_runtime_caps_blas_threads_from_settings() -> None:
    assert Settings.from_env({"LFR_BLAS_THREADS": "2"}).blas_threads == 2
    assert Settings().blas_threads == 1
    with threadpool_limits(limits=2, user_api="blas"):  # the restore at exit undoes the cap below
        limit_blas_threads.cache_clear()
        rt = Runtime(Settings(blas_threads=1))
        assert _blas_threads() == {2}  # not until the worker builds its index cache
        rt.index_cache  # noqa: B018
        assert _blas_threads() == {1}
    limit_blas_threads.cache_clear()
