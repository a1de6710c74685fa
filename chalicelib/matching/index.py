"""Exact 1:N cosine search over a watchlist held in memory (numpy).

A watchlist of 20,000 128-d templates is 10 MB and one probe is a single matrix-vector product,
so exact search beats any approximate index at the watchlist sizes police use and never misses
the true nearest subject.

How the search stays near the cost of reading the templates once (issue 12,
docs/performance.md):
- Templates are held transposed, (dims, subjects) C-contiguous. OpenBLAS's sgemv/sgemm on that
  layout streams them at memory speed; on (subjects, dims) it ran 1.7x slower for one probe.
- Scores are made one block of subjects at a time, so the (probes x subjects) score matrix is
  never written to memory (256 MB for 64 probes at 1,000,000 subjects).
- Top-1, what the worker asks for, is an argmax per block. Top-k keeps a running k-th best per
  probe and looks only at the scores above it: after the first block that is a compare, not a
  partition.
BLAS threads are limited by the worker runtime (chalicelib.matching.blas), not here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Subjects per block: 8192 x 128 float32 = 4 MB of templates; the scores of 64 probes on a
# block are 2 MB and stay in cache. 2048-32768 measured within noise of each other.
BLOCK = 8192


@dataclass(frozen=True)
class Candidate:
    subject_id: str
    score: float


class ExactIndex:
    def __init__(self, subject_ids: list[str], templates: np.ndarray, model_id: str) -> None:
        templates = np.asarray(templates, dtype=np.float32)
        if templates.ndim != 2 or templates.shape[0] != len(subject_ids):
            raise ValueError(f"{len(subject_ids)} ids but templates of shape {templates.shape}")
        norms = np.linalg.norm(templates, axis=1, keepdims=True)
        if len(subject_ids) and not np.all(norms > 0):
            raise ValueError("a template has zero norm")
        self.subject_ids = list(subject_ids)
        unit = templates / np.where(norms > 0, norms, 1.0)
        self.columns = np.ascontiguousarray(unit.T)  # (dims, subjects): see the module doc
        self.model_id = model_id

    @property
    def templates(self) -> np.ndarray:
        """(subjects, dims) unit templates: a view, not a second copy."""
        return self.columns.T

    def __len__(self) -> int:
        return len(self.subject_ids)

    def search(self, probes: np.ndarray, k: int = 1) -> list[list[Candidate]]:
        """Top-k subjects for each probe (rows L2-normalised), best first.

        Equal scores rank by position in the watchlist, earlier first.
        """
        probes = np.ascontiguousarray(np.atleast_2d(np.asarray(probes, dtype=np.float32)))
        if len(self) == 0 or probes.shape[0] == 0:
            return [[] for _ in range(probes.shape[0])]
        idx, val = top_k(probes, self.columns, max(1, min(k, len(self))))
        return [[Candidate(self.subject_ids[j], s) for j, s in zip(ri, rv, strict=True)]
                for ri, rv in zip(idx.tolist(), val.tolist(), strict=True)]


def top_k(probes: np.ndarray, columns: np.ndarray, k: int,
          block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """(indices, scores), each (probes, k), best first, of probes @ columns; ties: lower index.

    `columns` is (dims, subjects); k <= subjects.
    """
    if k == 1:
        return _top_1(probes, columns, block)
    b, n = probes.shape[0], columns.shape[1]
    best_v = np.full((b, k), -np.inf, np.float32)
    best_i = np.full((b, k), n, np.int64)  # n: "none yet", sorts after every real index
    for start in range(0, n, block):
        s = probes @ columns[:, start:start + block]
        # Strictly above the k-th best so far: an equal score here has a higher index, so loses.
        hit = s > best_v[:, -1:]
        if s.shape[1] > k and np.count_nonzero(hit, axis=1).max() > 4 * k:
            # The first block (or an adversarial order): keep this block's own top k, and every
            # score tied with its k-th, so the tie rule holds.
            kth = np.partition(s, s.shape[1] - k, axis=1)[:, s.shape[1] - k]
            hit &= s >= kth[:, None]
        rows, cols = np.nonzero(hit)
        if rows.size == 0:
            continue
        best_i, best_v = _merge(best_i, best_v, rows, cols + start, s[rows, cols], k)
    return best_i, best_v


def _merge(best_i: np.ndarray, best_v: np.ndarray, rows: np.ndarray, idx: np.ndarray,
           val: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The running top-k with new (row, index, score) candidates (rows ascending), vectorised."""
    b = best_i.shape[0]
    counts = np.bincount(rows, minlength=b)
    slot = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)
    pad_v = np.full((b, int(counts.max())), -np.inf, np.float32)
    pad_i = np.full(pad_v.shape, np.iinfo(np.int64).max, np.int64)
    pad_v[rows, slot] = val
    pad_i[rows, slot] = idx
    cat_v = np.concatenate([best_v, pad_v], axis=1)
    cat_i = np.concatenate([best_i, pad_i], axis=1)
    order = np.lexsort((cat_i, -cat_v), axis=-1)[:, :k]  # score descending, then index
    return np.take_along_axis(cat_i, order, axis=1), np.take_along_axis(cat_v, order, axis=1)


def _top_1(probes: np.ndarray, columns: np.ndarray,
           block: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(probes.shape[0])
    best_i = np.zeros(probes.shape[0], np.int64)
    best_v = np.full(probes.shape[0], -np.inf, np.float32)
    for start in range(0, columns.shape[1], block):
        s = probes @ columns[:, start:start + block]
        j = s.argmax(axis=1)  # the first of equal maxima
        v = s[rows, j]
        better = v > best_v  # strict: an earlier block keeps a tie
        best_v = np.where(better, v, best_v)
        best_i = np.where(better, j + start, best_i)
    return best_i[:, None], best_v[:, None]
