"""Which template precision the int8 search uses: 8 bits only where this machine's kernel is
exact for them (chalicelib.matching.coarse template_levels)."""

from __future__ import annotations

import numpy as np
import pytest

from chalicelib.matching import coarse

pytestmark = pytest.mark.skipif(not coarse.available(), reason="needs onnxruntime")


class _SaturatingSession:
    """MatMulInteger as MLAS's AVX2 u8s8 kernel does it: pairs of u8 x s8 products summed in
    int16 with saturation, then in int32, then the zero point's share taken off."""

    def __init__(self, w: np.ndarray) -> None:
        self.w = w.astype(np.int64)

    def run(self, _outputs: object, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        a = feeds["A"].astype(np.int64)
        prod = a[:, :, None] * self.w[None]  # (b, dims, width)
        pairs = np.clip(prod[:, 0::2] + prod[:, 1::2], -32768, 32767).sum(axis=1)
        return [(pairs - 128 * self.w.sum(axis=0)).astype(np.int32)]


def test_a_kernel_that_saturates_gets_7_bit_templates(monkeypatch) -> None:
    """The check finds the saturation, so 8-bit templates are never used where they would give
    wrong integer scores (and, past the bound, a wrong match)."""
    monkeypatch.setattr(coarse, "_session", lambda w: (_SaturatingSession(w), None))
    coarse.template_levels.cache_clear()
    try:
        assert coarse.template_levels() == coarse.SAFE_LEVELS
        a = np.full((2, 128), 255, np.uint8)
        w7 = np.full((128, 4), coarse.SAFE_LEVELS, np.int8)  # 7 bits: exact even here
        assert np.array_equal(_SaturatingSession(w7).run(None, {"A": a})[0],
                              np.full((2, 4), 127 * 63 * 128))
        w8 = np.full((128, 4), coarse.FULL_LEVELS, np.int8)  # 8 bits: wrong here
        assert not np.array_equal(_SaturatingSession(w8).run(None, {"A": a})[0],
                                  np.full((2, 4), 127 * 127 * 128))
    finally:
        coarse.template_levels.cache_clear()


def test_this_machine_s_kernel_is_checked_once() -> None:
    levels = coarse.template_levels()
    assert levels in (coarse.SAFE_LEVELS, coarse.FULL_LEVELS)
    before = coarse.template_levels.cache_info()
    assert coarse.template_levels() == levels
    assert coarse.template_levels.cache_info().hits == before.hits + 1
