"""The original's per-metric normalisers, as pure functions of a list of floats.

Each maps the values of one metric over the valid members of a pool to per-member numbers, reproducing the
original's arithmetic exactly, in its order of operations (docs/configuration.md, `modes`), including its quirks:
relative normalisers stretch any difference, however tiny, to their full output range. No numpy: the results
must not depend on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# The original uses 1e-6 both as the "no spread" stand-in for sigma and as the near-zero threshold for sigma/mean.
_TINY = 1e-6

# (cv upper bound, sensitivity, low, high) for the adaptive-distribution normaliser; the last bucket catches the rest.
_AD_BUCKETS: tuple[tuple[float, float, float, float], ...] = (
    (0.1, 3.0, 0.4, 0.6),
    (0.3, 2.0, 0.25, 0.75),
    (0.8, 1.5, 0.15, 0.85),
    (math.inf, 1.0, 0.1, 0.9),
)

# (relative spread upper bound, low, high) for the smooth normaliser.
_SMOOTH_BANDS: tuple[tuple[float, float, float], ...] = (
    (0.1, 0.45, 0.55),
    (0.3, 0.35, 0.65),
    (0.8, 0.25, 0.75),
    (2.0, 0.15, 0.85),
    (math.inf, 0.05, 0.95),
)


def _all_equal(x: Sequence[float]) -> bool:
    """True when every value equals the first one."""
    return all(v == x[0] for v in x)


def _mean(x: Sequence[float]) -> float:
    """Arithmetic mean as a plain sum / n, the way the original computes it."""
    return sum(x) / len(x)


def pop_std(x: Sequence[float]) -> float:
    """Population standard deviation (divides by n)."""
    m = _mean(x)
    return math.sqrt(sum((v - m) ** 2 for v in x) / len(x))


# Above this, e^t overflows a float; the logistic function is then 0 to double precision.
_EXP_LIMIT = 709.0


def _sigmoid_of_double(z: float) -> float:
    """1/(1+e^(-z*2)) in the original's order of operations; 0.0 where e^(-2z) would overflow."""
    t = -z * 2
    if t > _EXP_LIMIT:
        return 0.0
    return 1 / (1 + math.exp(t))


def min_max(x: Sequence[float]) -> list[float]:
    """mm: (x-min)/(max-min); one value or all equal -> zeros."""
    if len(x) <= 1 or _all_equal(x):
        return [0.0] * len(x)
    lo, hi = min(x), max(x)
    return [(v - lo) / (hi - lo) for v in x]


def soft_min_max(x: Sequence[float], equal_value: float) -> list[float]:
    """(x-min)/(max-min+1e-6) as s1_nonlinear does it; all equal (or one value) -> equal_value each."""
    if len(x) <= 1 or _all_equal(x):
        return [equal_value] * len(x)
    lo, hi = min(x), max(x)
    return [(v - lo) / (hi - lo + _TINY) for v in x]


def _sigmoid_spread(x: Sequence[float]) -> list[float]:
    """The logistic fallback shared by pc and pr: sigmoid(2z) with z=(x-mean)/(sigma_pop*3), sigma 1 if zero."""
    m = _mean(x)
    sigma = pop_std(x) or 1.0
    return [_sigmoid_of_double((v - m) / (sigma * 3)) for v in x]


def _log_ratio_scale(x: Sequence[float], floor: float) -> list[float] | None:
    """floor + 0.8 * (log2(v/min) / max log2(v/min)), or None when there is no spread to scale.

    The ratios are taken first and divided by their maximum afterwards, like the original; dividing log2(v/min) by
    log2(max/min) directly gives the same value to within an ulp, not bit for bit.
    """
    lo = min(x)
    log_ratios = [math.log2(v / lo) for v in x]
    top = max(log_ratios)
    if not top > 0:
        return None
    return [floor + 0.8 * (r / top) for r in log_ratios]


def precise_cache(x: Sequence[float]) -> list[float]:
    """pc in [0.2, 1.0]: log-ratio to the minimum when min>0, else a logistic fallback; one/all equal -> 0.5."""
    if len(x) <= 1 or _all_equal(x):
        return [0.5] * len(x)
    if min(x) > 0:
        scaled = _log_ratio_scale(x, 0.2)
        if scaled is not None:
            return scaled
    return [0.2 + 0.8 * s for s in _sigmoid_spread(x)]


def precise_running(x: Sequence[float]) -> list[float]:
    """pr in [0.15, 0.95]: log-ratio of x+1 when min>=0, else a logistic fallback; one/all equal -> 0.5."""
    if len(x) <= 1 or _all_equal(x):
        return [0.5] * len(x)
    if min(x) >= 0:
        scaled = _log_ratio_scale([v + 1 for v in x], 0.15)
        if scaled is not None:
            return scaled
    return [0.15 + 0.8 * s for s in _sigmoid_spread(x)]


def ratio_based(x: Sequence[float]) -> list[float]:
    """rb: n<=1 -> 0.5; n=2 -> share r/(r+1) vs 1/(r+1) when both >0 (mm if not); n>=3 -> plain mm."""
    if len(x) <= 1:
        return [0.5] * len(x)
    if len(x) >= 3:
        return min_max(x)
    a, b = x
    if a == b:
        return [0.5, 0.5]
    if a <= 0 or b <= 0:
        return min_max(x)
    r = max(a, b) / min(a, b)
    big, small = r / (r + 1.0), 1.0 / (r + 1.0)
    return [big, small] if a > b else [small, big]


def smooth(x: Sequence[float]) -> list[float]:
    """sm: mm squeezed into a band chosen by the relative spread; one/all equal -> 0.5."""
    if len(x) <= 1 or _all_equal(x):
        return [0.5] * len(x)
    lo, hi = min(x), max(x)
    rel = (hi - lo) / lo if lo > 0 else hi - lo
    band_lo, band_hi = next((b_lo, b_hi) for bound, b_lo, b_hi in _SMOOTH_BANDS if rel < bound)
    return [band_lo + n * (band_hi - band_lo) for n in min_max(x)]


def _stable_argsort(x: Sequence[float]) -> list[int]:
    """Indices that sort x ascending, ties kept in index order."""
    return sorted(range(len(x)), key=lambda i: x[i])


def adaptive_distribution(x: Sequence[float], metric_type: str = "general") -> list[float]:
    """ad: tanh of the z-score in a band picked by the coefficient of variation; rank-based if order breaks."""
    n = len(x)
    if n <= 1:
        return [0.5] * n
    lo_x, hi_x = min(x), max(x)
    # A waiting queue spanning more than an order of magnitude is judged on a log scale instead.
    if metric_type == "waiting_queue" and hi_x > 10 * lo_x and lo_x >= 0:
        return adaptive_distribution([math.log(max(1.0, v + 1.0)) for v in x], "general")
    m = _mean(x)
    sigma = pop_std(x) or _TINY
    cv = sigma / abs(m) if abs(m) > _TINY else sigma
    _, sens, lo, hi = next(b for b in _AD_BUCKETS if cv < b[0])
    if metric_type == "cache_usage":
        sens *= 1.5
        if cv < 0.2:
            lo, hi = 0.35, 0.65
    out = []
    for v in x:
        z = (v - m) / sigma if sigma > _TINY else 0.0
        s = math.tanh(z * sens / 2.0) * 0.5 + 0.5
        out.append(min(1.0, max(0.0, lo + s * (hi - lo))))
    order = _stable_argsort(x)
    if _stable_argsort(out) != order:
        # Floating-point saturation can merge outputs of distinct inputs; the original then falls back to ranks.
        ranked = [0.0] * n
        for rank, i in enumerate(order):
            ranked[i] = lo + rank / (n - 1) * (hi - lo)
        return ranked
    return out
