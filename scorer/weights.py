"""Weight adjustments of the original's scoring modes: coefficient-of-variation and dynamic-waiting weights.

Both take the configured base weights (one per metric, in W, C[, R] order) and return adjusted weights rescaled to
the same sum, so a mode's score range does not change with the adjustment (the original's formulas and order of
operations; docs/configuration.md, `modes`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from llmsched.scorer.normalizers import pop_std

# Per-metric (factor at I=0, factor at I=1) of the dynamic-waiting weights, I in [0, 1) being the waiting-queue
# pressure; the multiplier is lo + (hi - lo) * I, evaluated in that order so results are bit-identical.
_S1_DYNAMIC: tuple[tuple[float, float], ...] = ((0.2, 2.5), (1.8, 0.3))
_S2_DYNAMIC: tuple[tuple[float, float], ...] = ((0.1, 2.5), (1.5, 0.4), (1.4, 0.6))


def _rescale(adjusted: list[float], base: Sequence[float]) -> list[float]:
    """Scale adjusted so it sums to sum(base); left as is unless it sums to more than 0 (nothing to scale).

    Each weight is computed as w * sum(base) / total, left to right: a precomputed factor sum(base) / total rounds
    differently and moves scores by an ulp.
    """
    total = sum(adjusted)
    if not total > 0:
        return adjusted
    original_sum = sum(base)
    return [w * original_sum / total for w in adjusted]


def _cv_adaptive(x: Sequence[float]) -> float:
    """sigma_pop/mean as *_adaptive modes compute it: 0 for one value or a zero mean (sign of mean kept)."""
    if len(x) <= 1:
        return 0.0
    m = sum(x) / len(x)
    if m == 0:
        return 0.0
    return pop_std(x) / m


def _cv_advanced(x: Sequence[float]) -> float:
    """sigma_pop/|mean| as *_advanced modes compute it: 0 for one value or |mean| < 1e-6."""
    if len(x) <= 1:
        return 0.0
    m = sum(x) / len(x)
    if abs(m) < 1e-6:
        return 0.0
    return pop_std(x) / abs(m)


def _cv_weighted(base: Sequence[float], cvs: Sequence[float]) -> list[float]:
    """w_i * (1 + cv_i / sum cv), rescaled to the base sum; the base weights when sum cv is 0."""
    total_cv = sum(cvs)
    if not total_cv > 0:  # a negative mean gives a negative cv; the original then keeps the base weights too
        return list(base)
    return _rescale([w * (1.0 + cv / total_cv) for w, cv in zip(base, cvs)], base)


def cv_weights_adaptive(base: Sequence[float], metrics: Sequence[Sequence[float]]) -> list[float]:
    """CV weights of s1_adaptive / s2_adaptive: one base weight per metric's raw values."""
    return _cv_weighted(base, [_cv_adaptive(x) for x in metrics])


def cv_weights_advanced(base: Sequence[float], metrics: Sequence[Sequence[float]]) -> list[float]:
    """CV weights of s1_advanced / s2_advanced (|mean|, 1e-6 near-zero guard)."""
    return _cv_weighted(base, [_cv_advanced(x) for x in metrics])


def waiting_pressure(waiting: Sequence[float], transition_point: float, steepness: float) -> float:
    """I = tanh(max(W) * steepness / transition_point); with transition_point 0, its limit sign(max(W)*steepness)."""
    top = max(waiting)
    if transition_point == 0:
        # The original divides by zero here; the limit as transition_point -> 0+ is tanh(+-inf) = +-1, or 0.
        product = top * steepness
        return 0.0 if product == 0 else math.copysign(1.0, product)
    return math.tanh(top * steepness / transition_point)


def _dynamic(base: Sequence[float], factors: Sequence[tuple[float, float]], pressure: float) -> list[float]:
    """base_i * (lo_i + (hi_i - lo_i) * I), rescaled to the base sum."""
    return _rescale([w * (lo + (hi - lo) * pressure) for w, (lo, hi) in zip(base, factors)], base)


def dynamic_weights_s1(
    base: Sequence[float], waiting: Sequence[float], transition_point: float, steepness: float
) -> list[float]:
    """(w_a, w_b) of s1_dynamic_waiting: waiting weighs more, cache less, as the queue pressure I grows."""
    return _dynamic(base, _S1_DYNAMIC, waiting_pressure(waiting, transition_point, steepness))


def dynamic_weights_s2(
    base: Sequence[float], waiting: Sequence[float], transition_point: float, steepness: float
) -> list[float]:
    """(w_a, w_b, w_g) of s2_dynamic_waiting."""
    return _dynamic(base, _S2_DYNAMIC, waiting_pressure(waiting, transition_point, steepness))
