"""Int8 scores with a proven error bound: the pre-filter of the exact batch search (issue 12).

A batch of B probes costs 2 x B x 128 multiply-adds per subject. In float32 that is slower than
reading the templates from about 4 probes on (docs/performance.md section 4). Int8 products run
at ~4x the float32 rate per instruction (AVX-512 VNNI / AVX2 here, sdot on Graviton) and stream
a quarter of the bytes. numpy has no integer matrix product on BLAS, so this uses onnxruntime's
MatMulInteger (MLAS kernels). Nothing here is a kernel of our own; the sessions' one-node graph
is written by chalicelib.matching.onnx_graph, without the `onnx` package, which the Lambda layer
does not ship. The index decides when to use this (chalicelib.matching.index use_coarse).

Quantisation (integer products are exact in int32, so the only error is rounding):
- templates t_j ~= st * q_j, q_j int8 in [-L, L], one scale st for all subjects (so one probe's
  integer scores compare across subjects). L = 127 where this onnxruntime's product is exact at
  the extremes (checked once per process: template_levels), else 63: MLAS's AVX2 u8s8 kernel
  sums pairs of u8 x s8 products in int16 with saturation, and 255 x 63 x 2 < 32767 keeps it
  exact; its VNNI (AVX-512 / AVX-VNNI) and Arm kernels accumulate in int32. 8 bits halve the
  template error, and so the window, against 7.
- a probe p ~= sp * u, u int8 in [-127, 127], its own scale (scores are compared within a probe
  only), passed as uint8 u + 128 with zero point 128.
- p . t_j = sp st (u . q_j) + sp u . e_j + e_p . t_j, with e_j, e_p the rounding residuals, so
  |p . t_j - sp st (u . q_j)| <= sp |u| R + |e_p| Tmax (Cauchy-Schwarz; R = max |e_j|,
  Tmax = max |t_j|). `window` turns twice that, plus float32 rounding of the exact re-score, into
  integer units: every subject whose float32 score can be in the top k has an integer score
  within it of the k-th best integer score (proof in ExactIndex._search_coarse).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

SAFE_LEVELS, FULL_LEVELS = 63, 127  # templates: 7 or 8 bits, see the module doc
P_LEVELS = 127  # probes: 8-bit
# Subjects per onnxruntime session: 32768 x 128 int8 = 4 MB. 8192 cost more in calls; 131072
# more in score traffic (the (B x block) int32 output).
COARSE_BLOCK = 32768
# Subjects per segment: the shortlist keeps each segment's maximum per probe (one pass over a
# block's scores) and looks inside only the segments that reach the window, a few per probe.
SEGMENT = 256
# A float32 dot product of 128 terms is within 128 u / (1 - 128 u) * sum |p_i t_i| of the real
# one (u = 2^-24): 7.6e-6 * |p| |t|. Taken as 2e-5 for the re-score and the brute force alike.
FLOAT_SLACK = 2e-5


def available() -> bool:
    """Whether onnxruntime imports (the worker's models need it anyway; no `onnx` is needed)."""
    try:
        from chalicelib.vision.onnx_runtime import ort  # noqa: F401  (telemetry off first)
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class Quantised:
    """Probes as the sessions take them, with what a score of theirs may be off by."""

    u8: np.ndarray  # (probes, dims) uint8: u + 128
    step: np.ndarray  # (probes,) float64: one unit of u . q_j, in score (sp * st)
    bound: np.ndarray  # (probes,) float64: |float32 score - step * (u . q_j)| <= bound
    window: np.ndarray  # (probes,) int64: >= 2 * bound / step


class CoarseScorer:
    """Int8 copies of (subjects, dims) unit templates, one onnxruntime session per block."""

    def __init__(self, unit: np.ndarray, width: int = COARSE_BLOCK) -> None:
        """`unit`: the index's (subjects, dims) float32 unit templates (at least one subject);
        `width` subjects per session, a multiple of SEGMENT."""
        if width % SEGMENT:
            raise ValueError(f"a session's width must be a multiple of {SEGMENT}")
        self.subjects = unit.shape[0]
        self.levels = template_levels()
        self.scale = max(float(unit.max()), -float(unit.min()), 1e-30) / self.levels
        self.starts: list[int] = []
        self.sessions: list[Any] = []
        self._weights: list[Any] = []
        self.residual = self.tmax = 0.0
        for start in range(0, self.subjects, width):
            n = min(width, self.subjects - start)
            # (dims, width) with the last block's columns rounded up to whole segments; the
            # padding's scores are masked in blocks(), never read as a subject's.
            w = np.zeros((unit.shape[1], -(-n // SEGMENT) * SEGMENT), np.int8)
            # float64 a few thousand rows at a time, so the temporaries stay small and reused:
            # whole-session ones (17 MB each at 17,000 subjects) made a first build in a fresh
            # process 45-220 CPU-ms, against 28-37 this way.
            for lo in range(0, n, 4096):
                part = unit[start + lo:start + min(n, lo + 4096)].astype(np.float64)
                q = np.clip(np.rint(part / self.scale), -self.levels, self.levels)
                self.residual = max(self.residual, float(_norms(part - self.scale * q).max()))
                self.tmax = max(self.tmax, float(_norms(part).max()))
                w[:, lo:lo + q.shape[0]] = q.T
            sess, weights = _session(w)
            self.sessions.append(sess)
            self._weights.append(weights)  # onnxruntime reads them from this process's array
            self.starts.append(start)

    def quantise(self, probes: np.ndarray) -> Quantised:
        """The probes for the sessions, and each one's error bound; see the module doc."""
        p = probes.astype(np.float64)
        peak = np.abs(p).max(axis=1)
        sp = np.where(peak > 0, peak, 1.0) / P_LEVELS
        u = np.clip(np.rint(p / sp[:, None]), -P_LEVELS, P_LEVELS)
        e_p = _norms(p - sp[:, None] * u)
        err = sp * _norms(u) * self.residual + e_p * self.tmax
        err += FLOAT_SLACK * _norms(p) * max(self.tmax, 1.0)
        unit = sp * self.scale  # one integer step of u . q_j, in score
        # Twice the bound (the k-th best may be over-, a candidate under-estimated), in steps,
        # rounded up, plus one for the float64 arithmetic of the bound itself.
        window = np.ceil(2 * err / unit).astype(np.int64) + 1
        return Quantised((u + 128).astype(np.uint8), unit, err, window)

    def blocks(self, probes_u8: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """(first subject, (probes, block) int32 scores u . q_j) for each block, in order.

        A block's width is a multiple of SEGMENT; past the last subject, scores are INT32_MIN.
        """
        for start, sess in zip(self.starts, self.sessions, strict=True):
            y = sess.run(None, {"A": probes_u8})[0]
            y[:, self.subjects - start:] = np.iinfo(np.int32).min  # no-op but for the last
            yield start, y


@functools.cache
def template_levels() -> int:
    """127 if MatMulInteger here is exact for the largest products 8-bit templates can make,
    else 63 (see the module doc). Checked on several batch sizes, as MLAS may pick its kernel
    by shape; all-extreme inputs are where any int16 step would saturate first."""
    w = np.tile(np.array([FULL_LEVELS, -FULL_LEVELS], np.int8), (128, 24))  # (128, 48)
    sess, _held = _session(w)
    for b in (1, 2, 5, 16, 64):
        a = np.full((b, 128), 128 + P_LEVELS, np.uint8)
        want = P_LEVELS * w.astype(np.int64).sum(axis=0)
        if not np.array_equal(sess.run(None, {"A": a})[0], np.broadcast_to(want, (b, 48))):
            return SAFE_LEVELS
    return FULL_LEVELS


def _norms(rows: np.ndarray) -> np.ndarray:
    """Row norms (np.linalg.norm's per-call overhead was a tenth of a small batch's search)."""
    return np.sqrt(np.einsum("ij,ij->i", rows, rows))


def _session(weights: np.ndarray) -> tuple[Any, Any]:  # (InferenceSession, OrtValue)
    """MatMulInteger of (B, dims) uint8 probes with these (dims, block) int8 weights.

    The weights are an initializer, so MLAS packs them once, when the session is made.
    """
    from chalicelib.matching.onnx_graph import matmul_integer
    from chalicelib.vision.onnx_runtime import ort

    opts = ort.SessionOptions()
    # The weights go in as this process's array, not a copy inside the serialised model.
    held = ort.OrtValue.ortvalue_from_numpy(weights)  # a view: it must outlive the session
    opts.add_external_initializers(["W"], [held])
    opts.intra_op_num_threads = 1  # the deployed setting, as for BLAS (chalicelib.matching.blas)
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3
    sess = ort.InferenceSession(matmul_integer(*weights.shape), sess_options=opts,
                                providers=["CPUExecutionProvider"])
    return sess, held


def shortlist(scorer: CoarseScorer, probes: np.ndarray,
              k: int) -> tuple[np.ndarray, np.ndarray]:
    """(probe rows, subjects) whose integer score is within the window of the k-th best.

    That holds every subject of the exact top k (ExactIndex._search_coarse); k <= subjects.
    One pass over each block's scores takes every segment's maximum. The k-th best segment
    maximum so far, `kth`, is k subjects' scores, so it is at most the final k-th best integer
    score: `kth - window` never drops a subject that the final filter keeps. Only segments whose
    maximum reaches it are compared, subject by subject.
    """
    q = scorer.quantise(probes)
    window = q.window
    b = probes.shape[0]
    lowest = np.iinfo(np.int32).min
    best = np.full((b, k), lowest, np.int64)  # the k best segment maxima so far, any order
    held: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    waiting, limit = 0, 32 * k * b + 4096
    for start, y in scorer.blocks(q.u8):
        segments = y.reshape(b, -1, SEGMENT)
        peaks = segments.max(axis=2)  # (probes, segments)
        both = np.concatenate([best, peaks], axis=1)
        best = both[:, :k] if both.shape[1] == k else \
            np.partition(both, both.shape[1] - k, axis=1)[:, -k:]
        kth = best.min(axis=1)
        # int32, as the scores: a compare against int64 would convert the block first. Above
        # INT32_MIN, so the padding of the last block never passes (real scores are > -2^20).
        floor = np.maximum(kth - window, lowest + 1).astype(np.int32)
        # flatnonzero and divmod: 2-d nonzero cost several times more here.
        pr, ps = np.divmod(np.flatnonzero(peaks >= floor[:, None]), peaks.shape[1])
        if pr.size:
            chunk = segments[pr, ps]  # (hits, SEGMENT): a copy of the few segments that reach
            i, j = np.divmod(np.flatnonzero(chunk >= floor[pr][:, None]), SEGMENT)
            held.append((pr[i], start + ps[i] * SEGMENT + j, chunk[i, j].astype(np.int64)))
            waiting += i.size
        if waiting > limit:
            rows, cols, vals = _prune(*_joined(held), kth, window, k)
            held, waiting = [(rows, cols, vals)], rows.size
    # Not empty: the block holding the best segment maximum held at least that subject. The
    # final `kth` is the k-th best segment maximum of all blocks: one mask, no sort.
    rows, cols, vals = _joined(held)
    keep = vals >= (kth - window)[rows]
    return rows[keep], cols[keep]


def _joined(held: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    return [np.concatenate(x) for x in zip(*held, strict=True)]


def _prune(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, kth: np.ndarray,
           window: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The held candidates within the window of each row's k-th best held score."""
    order = np.lexsort((-vals, rows))  # by row, then score descending
    rows, cols, vals = rows[order], cols[order], vals[order]
    counts = np.bincount(rows, minlength=kth.size)
    first = np.cumsum(counts) - counts
    has_k = counts >= k
    kth = kth.copy()
    kth[has_k] = np.maximum(kth[has_k], vals[first[has_k] + k - 1])
    keep = vals >= (kth - window)[rows]
    return rows[keep], cols[keep], vals[keep]
