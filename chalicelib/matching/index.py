"""Exact 1:N cosine search over a watchlist held in memory (numpy).

A watchlist of 20,000 128-d templates is 10 MB and one probe is a single matrix-vector product,
so exact search beats any approximate index at the watchlist sizes police use and never misses
the true nearest subject.

How the search stays near the cost of reading the templates once (issue 12,
docs/performance.md):
- Templates are held transposed, in blocks of subjects, each block (dims, subjects) and
  C-contiguous. OpenBLAS's sgemv/sgemm on that layout streams them at memory speed; on
  (subjects, dims) it ran 1.7x slower for one probe, and slices of one (dims, all subjects)
  array ran 1.2x slower for 4 probes than contiguous blocks.
- Scores are made one block at a time, so the (probes x subjects) score matrix is never written
  to memory (256 MB for 64 probes at 1,000,000 subjects).
- Top-1, what the worker asks for, is an argmax per block. Top-k partitions the first block
  only; after it, a block costs a compare with a k-th best so far, and the few scores above it
  wait to be merged in bulk.
- Batches on galleries of 8,192 subjects and more, and single probes from 32,768 (the gate is
  use_coarse below): scored in int8 first, with onnxruntime (chalicelib.matching.coarse): a
  quarter of the bytes and ~4x the multiply-adds per instruction of float32, whose sgemm made
  4-16 probes 2.6-7x the read of the templates. Every subject the int8 error bound cannot rule
  out is re-scored in float64 from the (subjects, dims) rows, so the result is the exact one.
  The int8 copy (a quarter of the float32 memory) and its sessions are made at the first search
  that uses them. No `onnx` is needed (the Lambda layer ships none), only onnxruntime.
BLAS threads are limited by the worker runtime (chalicelib.matching.blas), not here; the int8
sessions run on one thread.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np

from chalicelib.matching import coarse

logger = logging.getLogger("lfr.matching")

# Subjects per block: 8192 x 128 float32 = 4 MB of templates; the scores of 64 probes on a
# block are 2 MB and stay in cache. 2048-8192 measured within noise; 32768 was slower for batches.
BLOCK = 8192
# Up to this many probes, one matrix-vector product per probe on a block (while it is in cache)
# beat OpenBLAS's sgemm, whose small-M kernel ran 2 and 4 probes at 1.4x and 1.7x the CPU.
GEMV_MAX = 4
# A search is scored in int8 first (chalicelib.matching.coarse), and its shortlist re-scored in
# float32, where the index has COARSE_MIN_SUBJECTS or more and probes x subjects is at least
# COARSE_MIN_SCORES (or k > 1); otherwise float32 only. Top-1, CPU-ms per probe, float32 ->
# int8, one run of benchmarks/coarse_gate.py (docs/performance.md section 4):
#   2,048:   B=4 0.020 -> 0.042, B=16 0.012 -> 0.016                (float32 always)
#   8,192:   B=2 0.069 -> 0.088, B=3 0.083 -> 0.050, B=4 0.064 -> 0.038, B=16 0.036 -> 0.016
#   17,000:  B=1 0.164 -> 0.163, B=2 0.195 -> 0.126, B=16 0.117 -> 0.036, B=64 0.078 -> 0.029
#   65,536:  B=1 1.37 -> 0.46, B=16 0.47 -> 0.10
# The one-off (the int8 copy and its session, made at the first such search) is 28-37 CPU-ms
# at 17,000 subjects; onnxruntime is already imported by the worker's models.
COARSE_MIN_SUBJECTS = 8192
COARSE_MIN_SCORES = 32_768


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
        # (subjects, dims) unit rows: what the int8 copy is made from and the re-score gathers
        # (a row each, contiguous; from the transposed blocks it was 128 strided reads).
        self.unit = np.ascontiguousarray(templates / np.where(norms > 0, norms, 1.0))
        self.model_id = model_id
        if not use_coarse(len(self), 1, 1):
            self.blocks  # noqa: B018  (made now: single probes search them)

    @property
    def templates(self) -> np.ndarray:
        """(subjects, dims) unit templates (a copy)."""
        return self.unit.copy()

    def __len__(self) -> int:
        return len(self.subject_ids)

    def search(self, probes: np.ndarray, k: int = 1) -> list[list[Candidate]]:
        """Top-k subjects for each probe (rows L2-normalised), best first.

        Equal scores rank by position in the watchlist, earlier first.
        """
        probes = np.ascontiguousarray(np.atleast_2d(np.asarray(probes, dtype=np.float32)))
        if len(self) == 0 or probes.shape[0] == 0:
            return [[] for _ in range(probes.shape[0])]
        k = max(1, min(k, len(self)))
        scorer = self.coarse if use_coarse(len(self), probes.shape[0], k) else None
        if scorer is not None:
            idx, val = self._search_coarse(scorer, probes, k)
        else:
            idx, val = top_k(probes, self.blocks, k)
        return [[Candidate(self.subject_ids[j], s) for j, s in zip(ri, rv, strict=True)]
                for ri, rv in zip(idx.tolist(), val.tolist(), strict=True)]

    @functools.cached_property
    def blocks(self) -> list[np.ndarray]:
        """The float32 search's (dims, <= BLOCK) blocks; for a large gallery, made only if the
        int8 sessions cannot be."""
        return column_blocks(self.unit)

    @functools.cached_property
    def coarse(self) -> coarse.CoarseScorer | None:
        """Int8 sessions, made at the first search that uses them; None without onnxruntime,
        or if they cannot be made: the search is then the float32 one, which gives the same
        results."""
        if not coarse.available():
            return None
        try:
            return coarse.CoarseScorer(self.unit, coarse.COARSE_BLOCK)
        except Exception:  # an onnxruntime without what the sessions need: float32 still works
            logger.warning("int8 search sessions could not be made; searching in float32",
                           exc_info=True)
            return None

    def _search_coarse(self, scorer: coarse.CoarseScorer, probes: np.ndarray,
                       k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k: an int8 shortlist, re-scored in float64.

        Why it is exact: with a_j the integer score in float units and f_j the re-scored one,
        |f_j - a_j| <= E (chalicelib.matching.coarse; E allows for float32 rounding too, so it
        holds for float64 a fortiori). k subjects have a_j >= a_k (the k-th best), so f_k (the
        k-th best re-scored) >= a_k - E, and any subject of the top k (ties included) has
        a_j >= f_j - E >= f_k - E >= a_k - 2E: in the shortlist.
        """
        rows, cols = coarse.shortlist(scorer, probes, k)
        # In float64: the few dozen rows per probe cost nothing more, and the ranking is then
        # that of exact arithmetic on the float32 inputs, not of one float32 summation order
        # (benchmarks/search_real_faces.py: at 40,000 subjects, 2-5 of ~6,300 top-5s of real
        # faces came out in another order, neighbours 1e-7 apart).
        scores = np.einsum("ij,ij->i", probes[rows].astype(np.float64),
                           self.unit[cols].astype(np.float64))
        # By probe, then score descending, then position. Every probe has at least k
        # candidates (its exact top k), so its best k are the first k of its run.
        order = np.lexsort((cols, -scores, rows))
        counts = np.bincount(rows, minlength=probes.shape[0])
        if counts.min() < k:  # cannot happen (proof above); were it to, float32 decides
            logger.error("int8 shortlist shorter than k; searching in float32")
            return top_k(probes, self.blocks, k)
        at = order[(np.cumsum(counts) - counts)[:, None] + np.arange(k)]
        return cols[at], scores[at]


def use_coarse(subjects: int, probes: int, k: int = 1) -> bool:
    """Whether a search of this many probes for the top k, on an index this size, goes through
    the int8 shortlist (where onnxruntime imports; docs/performance.md section 4). Top-k
    (k > 1) of even one probe: the float32 path's partition and merges cost more than int8."""
    return subjects >= COARSE_MIN_SUBJECTS and (probes * subjects >= COARSE_MIN_SCORES or k > 1)


def column_blocks(unit: np.ndarray, block: int = BLOCK) -> list[np.ndarray]:
    """(subjects, dims) -> C-contiguous (dims, <= block) arrays, in order (one copy in all)."""
    return [np.ascontiguousarray(unit[start:start + block].T)
            for start in range(0, unit.shape[0], block)]


def top_k(probes: np.ndarray, blocks: list[np.ndarray],
          k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, scores), each (probes, k), best first, over the blocks; ties: lower index.

    `blocks` as column_blocks makes them; k <= subjects.
    """
    if k == 1:
        return _top_1(probes, blocks)
    b, n = probes.shape[0], sum(blk.shape[1] for blk in blocks)
    best_v = np.full((b, k), -np.inf, np.float32)
    best_i = np.full((b, k), n, np.int64)  # n: "none yet", sorts after every real index
    # A score enters only if strictly above `floor`, a k-th best among earlier subjects (so an
    # equal score, having a higher index, would lose). A stale, lower floor only lets more
    # candidates wait in `held`; they are merged when there are many, and at the end.
    floor = np.full(b, -np.inf, np.float32)
    held: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    waiting = 0
    start = 0
    for blk in blocks:
        s = _scores(probes, blk)
        if start == 0 and s.shape[1] > k:
            # This block's own k-th best, and every score tied with it.
            kth = np.partition(s, s.shape[1] - k, axis=1)[:, s.shape[1] - k]
            rows, cols = np.nonzero(s >= kth[:, None])
            floor = kth  # k subjects already score at least this
        else:
            rows, cols = np.nonzero(s > floor[:, None])
        if rows.size:
            held.append((rows, cols + start, s[rows, cols]))
            waiting += rows.size
        if waiting > 8 * k * b or (start == 0 and s.shape[1] <= k):
            best_i, best_v = _merge(best_i, best_v, held, k)
            floor, held, waiting = best_v[:, -1], [], 0
        start += s.shape[1]
    if held:
        best_i, best_v = _merge(best_i, best_v, held, k)
    return best_i, best_v


def _merge(best_i: np.ndarray, best_v: np.ndarray,
           held: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
           k: int) -> tuple[np.ndarray, np.ndarray]:
    """The running top-k with the held (row, index, score) candidates, vectorised."""
    rows, idx, val = (np.concatenate(part) for part in zip(*held, strict=True))
    b = best_i.shape[0]
    counts = np.bincount(rows, minlength=b)
    by_row = np.argsort(rows, kind="stable")
    rows, idx, val = rows[by_row], idx[by_row], val[by_row]
    slot = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)
    pad_v = np.full((b, int(counts.max())), -np.inf, np.float32)
    pad_i = np.full(pad_v.shape, np.iinfo(np.int64).max, np.int64)
    pad_v[rows, slot] = val
    pad_i[rows, slot] = idx
    cat_v = np.concatenate([best_v, pad_v], axis=1)
    cat_i = np.concatenate([best_i, pad_i], axis=1)
    order = np.lexsort((cat_i, -cat_v), axis=-1)[:, :k]  # score descending, then index
    return np.take_along_axis(cat_i, order, axis=1), np.take_along_axis(cat_v, order, axis=1)


def _scores(probes: np.ndarray, block: np.ndarray) -> np.ndarray:
    if 1 < probes.shape[0] <= GEMV_MAX:
        return np.stack([p @ block for p in probes])
    return probes @ block


def _top_1(probes: np.ndarray, blocks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(probes.shape[0])
    best_i = np.zeros(probes.shape[0], np.int64)
    best_v = np.full(probes.shape[0], -np.inf, np.float32)
    start = 0
    for blk in blocks:
        s = _scores(probes, blk)
        j = s.argmax(axis=1)  # the first of equal maxima
        v = s[rows, j]
        better = v > best_v  # strict: an earlier block keeps a tie
        best_v = np.where(better, v, best_v)
        best_i = np.where(better, j + start, best_i)
        start += s.shape[1]
    return best_i[:, None], best_v[:, None]
