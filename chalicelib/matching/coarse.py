"""Int8 scores with a proven error bound: the pre-filter of the exact batch search (issue 12).

A batch of B probes costs 2 x B x 128 multiply-adds per subject. In float32 that is slower than
reading the templates from about 4 probes on (docs/performance.md section 4). Int8 products run
at ~4x the float32 rate per instruction (AVX-512 VNNI / AVX2 here, sdot on Graviton) and stream
a quarter of the bytes. numpy has no integer matrix product on BLAS, so this uses onnxruntime's
MatMulInteger (MLAS kernels), with graphs written with the `onnx` package. Nothing here is a
kernel of our own. The Lambda layer ships onnxruntime but not `onnx`, so there `available()` is
False and the index searches in float32; the index uses this only for large galleries
(chalicelib.matching.index COARSE_MIN_SUBJECTS).

Quantisation (integer products are exact in int32, so the only error is rounding):
- templates t_j ~= st * q_j, q_j int8 in [-63, 63], one scale st for all subjects (so one probe's
  integer scores compare across subjects). 7 bits, not 8: MLAS's AVX2 u8s8 kernel sums pairs of
  u8 x s8 products in int16 with saturation; 255 x 63 x 2 < 32767 keeps it exact.
- a probe p ~= sp * u, u int8 in [-127, 127], its own scale (scores are compared within a probe
  only), passed as uint8 u + 128 with zero point 128.
- p . t_j = sp st (u . q_j) + sp u . e_j + e_p . t_j, with e_j, e_p the rounding residuals, so
  |p . t_j - sp st (u . q_j)| <= sp |u| R + |e_p| Tmax (Cauchy-Schwarz; R = max |e_j|,
  Tmax = max |t_j|). `window` turns twice that, plus float32 rounding of the exact re-score, into
  integer units: every subject whose float32 score can be in the top k has an integer score
  within it of the k-th best integer score (proof in ExactIndex._search_coarse).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

T_LEVELS = 63  # templates: 7-bit, see the module doc
P_LEVELS = 127  # probes: 8-bit
# Subjects per onnxruntime session: 32768 x 128 int8 = 4 MB. 8192 cost more in calls; 131072
# more in score traffic (the (B x block) int32 output).
COARSE_BLOCK = 32768
# A float32 dot product of 128 terms is within 128 u / (1 - 128 u) * sum |p_i t_i| of the real
# one (u = 2^-24): 7.6e-6 * |p| |t|. Taken as 2e-5 for the re-score and the brute force alike.
FLOAT_SLACK = 2e-5


def available() -> bool:
    """Whether `onnx` (to write the sessions' graphs) and onnxruntime can both be imported.

    The Lambda inference layer ships onnxruntime but not `onnx` (its recognizer is prepared at
    layer build time), so on Lambda this is False and the index searches in float32. Called
    only for galleries past the index's size gate: importing `onnx` costs ~0.7 CPU-s.
    """
    try:
        import onnx  # noqa: F401

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

    def __init__(self, columns: list[np.ndarray], width: int = COARSE_BLOCK) -> None:
        """`columns`: the index's (dims, subjects) float32 unit blocks, in order (at least one
        subject); consecutive ones are joined into sessions of about `width` subjects."""
        self.scale = max(max(float(c.max()), -float(c.min())) for c in columns) / T_LEVELS
        self.scale = max(self.scale, 1e-30)
        group = max(1, width // columns[0].shape[1])
        self.starts: list[int] = []
        self.sessions: list[Any] = []
        self._weights: list[Any] = []
        self.residual = self.tmax = 0.0
        start = 0
        for i in range(0, len(columns), group):  # float64 copies of one session's columns
            wide = np.concatenate(columns[i:i + group], axis=1).astype(np.float64)
            q = np.clip(np.rint(wide / self.scale), -T_LEVELS, T_LEVELS)
            self.residual = max(self.residual,
                                float(np.linalg.norm(wide - self.scale * q, axis=0).max()))
            self.tmax = max(self.tmax, float(np.linalg.norm(wide, axis=0).max()))
            sess, weights = _session(q.astype(np.int8))
            self.sessions.append(sess)
            self._weights.append(weights)  # onnxruntime reads them from this process's array
            self.starts.append(start)
            start += wide.shape[1]

    def quantise(self, probes: np.ndarray) -> Quantised:
        """The probes for the sessions, and each one's error bound; see the module doc."""
        p = probes.astype(np.float64)
        peak = np.abs(p).max(axis=1)
        sp = np.where(peak > 0, peak, 1.0) / P_LEVELS
        u = np.clip(np.rint(p / sp[:, None]), -P_LEVELS, P_LEVELS)
        e_p = np.linalg.norm(p - sp[:, None] * u, axis=1)
        err = sp * np.linalg.norm(u, axis=1) * self.residual + e_p * self.tmax
        err += FLOAT_SLACK * np.linalg.norm(p, axis=1) * max(self.tmax, 1.0)
        unit = sp * self.scale  # one integer step of u . q_j, in score
        # Twice the bound (the k-th best may be over-, a candidate under-estimated), in steps,
        # rounded up, plus one for the float64 arithmetic of the bound itself.
        window = np.ceil(2 * err / unit).astype(np.int64) + 1
        return Quantised((u + 128).astype(np.uint8), unit, err, window)

    def blocks(self, probes_u8: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """(first subject, (probes, block) int32 scores u . q_j) for each block, in order."""
        for start, sess in zip(self.starts, self.sessions, strict=True):
            yield start, sess.run(None, {"A": probes_u8})[0]


def _session(weights: np.ndarray) -> tuple[Any, Any]:  # (InferenceSession, OrtValue)
    """MatMulInteger of (B, dims) uint8 probes with these (dims, block) int8 weights.

    The weights are an initializer, so MLAS packs them once, when the session is made.
    """
    from onnx import TensorProto, helper

    from chalicelib.vision.onnx_runtime import ort

    dims, width = weights.shape
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "W", "zp"], ["Y"])], "coarse",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, ["B", dims])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, ["B", width])],
        initializer=[helper.make_tensor("zp", TensorProto.UINT8, [], [128]), _stub(weights)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=9)
    opts = ort.SessionOptions()
    # The weights go in as this process's array, not a copy inside the serialised model.
    held = ort.OrtValue.ortvalue_from_numpy(weights)  # a view: it must outlive the session
    opts.add_external_initializers(["W"], [held])
    opts.intra_op_num_threads = 1  # the deployed setting, as for BLAS (chalicelib.matching.blas)
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), sess_options=opts,
                                providers=["CPUExecutionProvider"])
    return sess, held


def _stub(weights: np.ndarray) -> Any:  # -> onnx.TensorProto
    """An initializer "W" whose data is external: add_external_initializers gives it."""
    from onnx import TensorProto

    stub = TensorProto(name="W", data_type=TensorProto.INT8, dims=list(weights.shape))
    stub.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "in-memory"), ("offset", "0"),
                       ("length", str(weights.nbytes))):
        entry = stub.external_data.add()
        entry.key, entry.value = key, value
    return stub


def shortlist(scorer: CoarseScorer, probes: np.ndarray,
              k: int) -> tuple[np.ndarray, np.ndarray]:
    """(probe rows, subjects) whose integer score is within the window of the k-th best.

    That holds every subject of the exact top k (ExactIndex._search_coarse); k <= subjects.
    A running k-th best integer score, `kth`, is a lower bound of the final one (a k-th best
    of fewer subjects), so `kth - window` never drops a subject that the final filter keeps.
    """
    q = scorer.quantise(probes)
    u8, window = q.u8, q.window
    b = probes.shape[0]
    lowest = np.iinfo(np.int32).min
    kth = np.full(b, lowest, np.int64)
    held: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    waiting, limit = 0, 32 * k * b + 4096
    for start, y in scorer.blocks(u8):
        width = y.shape[1]
        if width >= k:
            # The maxima of k slices of the block are k subjects' scores, so their minimum is
            # at most the k-th best: a lower bound for one max pass (np.partition cost ~10x).
            maxima = np.maximum.reduceat(y, np.arange(k) * width // k, axis=1)
            top = maxima.max(axis=1)
            kth = np.maximum(kth, maxima.min(axis=1))
        else:
            top = y.max(axis=1)
        # int32, as the scores: a compare against int64 would convert the block first.
        floor = np.maximum(kth - window, lowest).astype(np.int32)
        active = np.flatnonzero(top >= floor)
        if 4 * active.size > b:  # many rows: one compare of the block (2-d nonzero is slower)
            at = np.flatnonzero(y >= floor[:, None])
            r, c = np.divmod(at, y.shape[1])
            held.append((r, c + start, y.ravel()[at].astype(np.int64)))
            waiting += at.size
            active = active[:0]
        for r in active:  # a few rows: a view each, no copy
            c = np.flatnonzero(y[r] >= floor[r])
            held.append((np.full(c.size, r), c + start, y[r, c].astype(np.int64)))
            waiting += c.size
        if waiting > limit:
            rows, cols, vals, kth = _prune(*_joined(held), kth, window, k)
            held, waiting = [(rows, cols, vals)], rows.size
    rows, cols, _, _ = _prune(*_joined(held), kth, window, k)
    return rows, cols


def _joined(held: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    return [np.concatenate(x) for x in zip(*held, strict=True)]


def _prune(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, kth: np.ndarray,
           window: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The held candidates within the window of each row's k-th best held score (and `kth`)."""
    order = np.lexsort((-vals, rows))  # by row, then score descending
    rows, cols, vals = rows[order], cols[order], vals[order]
    counts = np.bincount(rows, minlength=kth.size)
    first = np.cumsum(counts) - counts
    has_k = counts >= k
    kth = kth.copy()
    kth[has_k] = np.maximum(kth[has_k], vals[first[has_k] + k - 1])
    keep = vals >= (kth - window)[rows]
    return rows[keep], cols[keep], vals[keep], kth
