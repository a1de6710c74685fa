"""Exact (Clopper-Pearson) binomial confidence intervals for the published false alert rates.

Pure. Written here rather than imported: scipy (`scipy.stats.binomtest(...).proportion_ci(
method="exact")`) and statsmodels (`proportion_confint(method="beta")`, which needs scipy) are
not dependencies of the deployed functions, and scipy alone would take the function plus its
inference layer past Lambda's 250 MB (docs/deploy.md). The interval is found from its
definition, the binomial tails, by bisection; tests/unit/test_rates.py checks it against scipy.
"""

from __future__ import annotations

import math

METHOD = "exact (Clopper-Pearson) two-sided 95% interval"


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space (k is small: false alerts).
    log C(n, i) is built term by term, not from lgamma(n): at n in the millions lgamma's
    rounding alone would move the result in the fifth digit."""
    if k >= n or p <= 0.0:
        return 1.0
    if k < 0 or p >= 1.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms, log_comb = [], 0.0
    for i in range(k + 1):
        terms.append(log_comb + i * log_p + (n - i) * log_q)
        log_comb += math.log(n - i) - math.log(i + 1)
    top = max(terms)
    return min(1.0, math.exp(top) * math.fsum(math.exp(t - top) for t in terms))


def _solve(f, target: float) -> float:  # type: ignore[no-untyped-def]
    """The p in (0, 1) where the decreasing function f crosses target (bisection in log p,
    so that rates of one in millions keep their relative precision)."""
    lo, hi = -745.0, 0.0  # log of the smallest positive double, log 1
    for _ in range(200):
        mid = (lo + hi) / 2
        if f(math.exp(mid)) > target:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2)


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact interval for k events in n trials: the lower bound is the p at which
    P(X >= k) = alpha/2, the upper the p at which P(X <= k) = alpha/2 (0 and 1 at the ends)."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    half = (1.0 - confidence) / 2
    lower = 0.0 if k == 0 else _solve(lambda p: binom_cdf(k - 1, n, p), 1.0 - half)
    upper = 1.0 if k == n else _solve(lambda p: binom_cdf(k, n, p), half)
    return lower, upper
