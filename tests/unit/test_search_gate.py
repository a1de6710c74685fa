"""Where the int8 shortlist of the search applies: batches from 8,192 subjects and single probes
from 32,768, where onnxruntime imports; `onnx` is never needed (the Lambda layer ships none).
A police-size watchlist searches single probes in float32 (docs/performance.md section 4)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chalicelib.matching import coarse
from chalicelib.matching import index as index_module
from chalicelib.matching.index import BLOCK, ExactIndex, top_k, use_coarse

REPO = Path(__file__).resolve().parents[2]


def _units(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, 128), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _brute_force(templates: np.ndarray, probes: np.ndarray, k: int) -> list[list[int]]:
    """float64 scores, descending, then position; in chunks (the gallery is 134 MB)."""
    p = probes.astype(np.float64)
    scores = np.concatenate([p @ templates[i:i + 32768].T.astype(np.float64)
                             for i in range(0, templates.shape[0], 32768)], axis=1)
    return np.argsort(-scores, axis=1, kind="stable")[:, :k].tolist()


def test_the_gate_is_subjects_and_scores_per_search() -> None:
    assert not use_coarse(17_000, 1)  # a police-size watchlist: single probes in float32
    assert use_coarse(17_000, 2)
    assert not use_coarse(8191, 64)  # small galleries: float32 whatever the batch
    assert use_coarse(8192, 4)
    assert not use_coarse(8192, 3)
    assert not use_coarse(32_767, 1)
    assert use_coarse(32_768, 1)
    assert use_coarse(17_000, 1, k=5)  # top-k of one probe: int8
    assert not use_coarse(8191, 1, k=5)


def test_below_the_gate_blocks_are_contiguous_copies_made_up_front() -> None:
    n = 2 * BLOCK + 17
    index = ExactIndex([str(i) for i in range(n)], _units(np.random.default_rng(0), n), "m")
    assert "blocks" in index.__dict__  # made with the index: single probes search them
    assert [b.shape[1] for b in index.blocks] == [BLOCK, BLOCK, 17]
    assert all(b.flags.c_contiguous for b in index.blocks)


@pytest.fixture(scope="module")
def large() -> np.ndarray:
    """Two sessions, the second padded (32,768 + 7,232 subjects), (40,000 x 128) float32."""
    return _units(np.random.default_rng(7), 40_000)


def _check(index: ExactIndex, large: np.ndarray, seed: int) -> None:
    n = large.shape[0]
    probes = _units(np.random.default_rng(seed), 8)
    probes[3] = large[n - 5]  # a subject in the last session's range
    for b, k in ((8, 5), (1, 1), (2, 1), (8, 1)):
        got = index.search(probes[:b], k=k)
        want = _brute_force(large, probes[:b], k)
        assert [[int(c.subject_id) for c in row] for row in got] == want
    assert int(index.search(probes[3])[0][0].subject_id) == n - 5


def test_without_onnx_the_int8_path_still_runs(large, monkeypatch) -> None:
    """As on Lambda (no `onnx` in the layer): the sessions' graph needs only onnxruntime, and
    a gallery past the gate makes no float32 blocks."""
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    assert coarse.available()
    index = ExactIndex([str(i) for i in range(large.shape[0])], large, "m")
    _check(index, large, 1)
    assert index.coarse is not None
    assert "blocks" not in index.__dict__


def test_a_police_size_watchlist_is_exact_on_both_paths() -> None:
    """17,000 subjects (one session, its last segment part padding): single probes in float32,
    batches and top-k in int8, all equal to float64 brute force."""
    n = 17_000
    t = _units(np.random.default_rng(17), n)
    index = ExactIndex([str(i) for i in range(n)], t, "m")
    probes = _units(np.random.default_rng(18), 64)
    probes[5] = t[n - 1]  # the last real subject, beside the padding
    for b, k in ((1, 1), (1, 5), (2, 1), (6, 1), (16, 5), (64, 1)):
        got = index.search(probes[:b], k=k)
        assert [[int(c.subject_id) for c in row] for row in got] == _brute_force(t, probes[:b], k)
    assert index.coarse is not None


def test_without_onnxruntime_a_large_gallery_searches_in_float32(large, monkeypatch) -> None:
    for name in ("onnxruntime", "chalicelib.vision.onnx_runtime"):
        monkeypatch.setitem(sys.modules, name, None)
    assert not coarse.available()
    index = ExactIndex([str(i) for i in range(large.shape[0])], large, "m")
    _check(index, large, 2)
    assert index.coarse is None


def test_sessions_that_cannot_be_made_fall_back_to_float32(monkeypatch) -> None:
    """An onnxruntime without what the sessions need: a warning, then float32."""
    def fail(*_: object, **__: object) -> None:
        raise RuntimeError("no MatMulInteger here")

    monkeypatch.setattr(index_module, "COARSE_MIN_SUBJECTS", 1)
    monkeypatch.setattr(coarse, "available", lambda: True)
    monkeypatch.setattr(coarse, "CoarseScorer", fail)
    n = BLOCK + 99
    templates, probes = _units(np.random.default_rng(3), n), _units(np.random.default_rng(4), 6)
    index = ExactIndex([str(i) for i in range(n)], templates, "m")
    got = index.search(probes, k=3)
    assert index.coarse is None
    want, _ = top_k(probes, index.blocks, 3)
    assert [[int(c.subject_id) for c in row] for row in got] == want.tolist()


_POLICE_SIZE = """
import json, sys
import numpy as np
from chalicelib.matching.index import ExactIndex
rng = np.random.default_rng(0)
t = rng.standard_normal((17000, 128), dtype=np.float32)
index = ExactIndex([str(i) for i in range(17000)], t, "m")
seen = {}
for b, k in ((1, 1), (2, 1), (16, 1), (1, 5), (4, 5)):
    p = rng.standard_normal((b, 128), dtype=np.float32)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    assert len(index.search(p, k=k)) == b
    seen[f"{b},{k}"] = {m: m in sys.modules for m in ("onnx", "onnxruntime")}
print(json.dumps(seen))
"""


def test_a_police_size_watchlist_never_imports_onnx() -> None:
    """17,000 subjects in a fresh interpreter: a single probe's top-1 (what the worker asks
    for one face) uses neither package; batches and top-k use onnxruntime (which the worker's
    models have already imported), never `onnx` (0.7 CPU-s to import, not in the layer)."""
    out = subprocess.run([sys.executable, "-c", _POLICE_SIZE], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen.pop("1,1") == {"onnx": False, "onnxruntime": False}
    assert all(v == {"onnx": False, "onnxruntime": True} for v in seen.values())
