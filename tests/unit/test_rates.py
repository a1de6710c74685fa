"""The exact interval the transparency record publishes, against known values and scipy."""

from __future__ import annotations

import pytest
from scipy.stats import beta, binomtest

from chalicelib.ops.rates import binom_cdf, clopper_pearson


def test_textbook_values() -> None:
    # 1 in 10: (0.0025, 0.4450), the usual worked example of the exact interval.
    lo, hi = clopper_pearson(1, 10)
    assert lo == pytest.approx(0.002529, abs=1e-6) and hi == pytest.approx(0.445016, abs=1e-6)
    # None in n: the "rule of three" interval's exact form, upper = 1 - 0.025 ** (1 / n).
    assert clopper_pearson(0, 3000) == pytest.approx((0.0, 1 - 0.025 ** (1 / 3000)), rel=1e-9)
    # One in n: the lower bound solves (1 - p) ** n = 0.975.
    assert clopper_pearson(1, 4000)[0] == pytest.approx(1 - 0.975 ** (1 / 4000), rel=1e-9)
    assert clopper_pearson(5, 5) == pytest.approx((0.025 ** (1 / 5), 1.0), rel=1e-9)


@pytest.mark.parametrize("k,n", [(0, 1), (1, 2), (1, 37), (3, 1000), (10, 3_147_436),
                                 (17, 250), (40, 90), (2, 1_000_000_000)])
def test_matches_scipy(k: int, n: int) -> None:
    lo, hi = clopper_pearson(k, n)
    # The beta-quantile form of the same interval (scipy's, from Boost).
    assert lo == (pytest.approx(beta.ppf(0.025, k, n - k + 1), rel=1e-7) if k else 0.0)
    assert hi == (pytest.approx(beta.ppf(0.975, k + 1, n - k), rel=1e-7) if k < n else 1.0)
    if n <= 10_000_000:
        # binomtest's own search; at a billion trials it drifts in the fifth digit (a
        # 50-digit mpmath bisection agrees with the beta form and with ours there).
        expected = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        assert (lo, hi) == pytest.approx((expected.low, expected.high), rel=1e-7)


def test_other_confidence_levels_and_bad_input() -> None:
    expected = binomtest(2, 50).proportion_ci(confidence_level=0.99, method="exact")
    assert clopper_pearson(2, 50, 0.99) == pytest.approx((expected.low, expected.high), rel=1e-7)
    for k, n in ((1, 0), (-1, 5), (6, 5)):
        with pytest.raises(ValueError):
            clopper_pearson(k, n)


def test_binomial_tail() -> None:
    assert binom_cdf(0, 10, 0.5) == pytest.approx(0.5 ** 10)
    assert binom_cdf(10, 10, 0.3) == 1.0 and binom_cdf(3, 10, 0.0) == 1.0
    assert binom_cdf(3, 10, 1.0) == 0.0
