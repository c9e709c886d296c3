"""The original's 16 scoring modes and `compute_scores`, the one entry point the rest of llmsched uses.

A mode turns the metrics of a pool's members into one score per member, bit-identical to the original (the
normalisers and weight adjustments follow its order of operations; tests/scorer/data/reference-scores.json holds
its own outputs, compared with ==). Scores are computed over the *valid* members only: S1 modes need
`waiting_queue` and `cache_usage`, S2 modes also `running_req`; a missing or non-finite value makes the member
invalid and its score `None` (the scoring step stores it as null: never picked).
Every mode but `s1_ratio` clamps its scores to [0, 1]; `s1_ratio` can go negative.

Deliberate deviation: the original divides by `transition_point` in the dynamic-waiting modes and crashes when it is
0. Here `transition_point == 0` uses the limit of tanh(max(W)*steepness/transition_point), i.e. I = 1.0 when
max(W) > 0 (with the usual positive steepness) and I = 0.0 when max(W) == 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from llmsched.scorer import normalizers as nz
from llmsched.scorer import saturation
from llmsched.scorer import weights as wt
from llmsched.scorer.values import finite_metric
from llmsched.shared.config_model import MODE_NAMES, ORIGINAL_MODE_NAMES

__all__ = ["MODE_NAMES", "compute_scores"]

_DEFAULT_WEIGHTS: dict[str, float] = {
    "w_a": 0.5,
    "w_b": 0.5,
    "w_g": 0.0,
    "transition_point": 30.0,
    "steepness": 1.0,
}
_S1_KEYS = ("waiting_queue", "cache_usage")
_S2_KEYS = ("waiting_queue", "cache_usage", "running_req")


@dataclass(frozen=True)
class _Pool:
    """The valid members' metric columns plus the resolved weights."""

    w: list[float]
    c: list[float]
    r: list[float]
    w_a: float
    w_b: float
    w_g: float
    transition_point: float
    steepness: float


ModeFn = Callable[[_Pool], list[float]]


def _complement(x: Sequence[float]) -> list[float]:
    """1 - x elementwise: every metric is "lower is better"."""
    return [1.0 - v for v in x]


def _combine(weights: Sequence[float], columns: Sequence[Sequence[float]]) -> list[float]:
    """Per member, the weighted sum of its column values, added in the order the original adds them."""
    out = []
    for row in zip(*columns):
        total = 0.0
        for w, v in zip(weights, row):
            total += w * v
        out.append(total)
    return out


# --- S1 family: waiting queue W and cache usage C ---------------------------------------------------------------


def _s1(p: _Pool) -> list[float]:
    return _combine((p.w_a, p.w_b), (_complement(nz.min_max(p.w)), _complement(p.c)))


def _s1_enhanced(p: _Pool) -> list[float]:
    return _combine((p.w_a, p.w_b), (_complement(nz.min_max(p.w)), _complement(nz.precise_cache(p.c))))


def _s1_adaptive(p: _Pool) -> list[float]:
    weights = wt.cv_weights_adaptive((p.w_a, p.w_b), (p.w, p.c))
    return _combine(weights, (_complement(nz.min_max(p.w)), _complement(nz.min_max(p.c))))


def _s1_ratio(p: _Pool) -> list[float]:
    # Raw waiting counts: any queue above 1 makes the first term negative, and this mode is never clamped.
    return _combine((p.w_a, p.w_b), (_complement(p.w), _complement(nz.ratio_based(p.c))))


def _s1_precise(p: _Pool) -> list[float]:
    return _combine((p.w_a, p.w_b), (_complement(p.w), _complement(p.c)))


def _s1_nonlinear(p: _Pool) -> list[float]:
    n_w = nz.soft_min_max(p.w, 0.0)
    # The original's "power" parameter is always 2.0; the square is re-stretched to [0, 1] unless it is flat.
    amplified = [v**2.0 for v in nz.soft_min_max(p.c, 0.5)]
    if not all(v == amplified[0] for v in amplified):
        amplified = nz.min_max(amplified)
    return _combine((p.w_a, p.w_b), (_complement(n_w), _complement(amplified)))


def _s1_balanced(p: _Pool) -> list[float]:
    return _combine((p.w_a, p.w_b), (_complement(nz.smooth(p.w)), _complement(nz.smooth(p.c))))


def _s1_ad_columns(p: _Pool) -> tuple[list[float], list[float]]:
    """(1 - ad(W)), (1 - ad(C)) shared by the three adaptive-distribution S1 modes."""
    return (
        _complement(nz.adaptive_distribution(p.w, "waiting_queue")),
        _complement(nz.adaptive_distribution(p.c, "cache_usage")),
    )


def _s1_adaptive_distribution(p: _Pool) -> list[float]:
    return _combine((p.w_a, p.w_b), _s1_ad_columns(p))


def _s1_advanced(p: _Pool) -> list[float]:
    return _combine(wt.cv_weights_advanced((p.w_a, p.w_b), (p.w, p.c)), _s1_ad_columns(p))


def _s1_dynamic_waiting(p: _Pool) -> list[float]:
    weights = wt.dynamic_weights_s1((p.w_a, p.w_b), p.w, p.transition_point, p.steepness)
    return _combine(weights, _s1_ad_columns(p))


# --- S2 family: adds running requests R -------------------------------------------------------------------------


def _s2_weights(p: _Pool) -> tuple[float, float, float]:
    return (p.w_a, p.w_b, p.w_g)


def _s2(p: _Pool) -> list[float]:
    columns = (_complement(nz.min_max(p.w)), _complement(p.c), _complement(nz.min_max(p.r)))
    return _combine(_s2_weights(p), columns)


def _s2_enhanced(p: _Pool) -> list[float]:
    columns = (_complement(nz.min_max(p.w)), _complement(nz.precise_cache(p.c)), _complement(nz.precise_running(p.r)))
    return _combine(_s2_weights(p), columns)


def _s2_nonlinear(p: _Pool) -> list[float]:
    # The code squares the complement (1 - mm)^2, not 1 - mm^2 as the original's docs say.
    columns = [[v**2 for v in _complement(nz.min_max(x))] for x in (p.w, p.c, p.r)]
    return _combine(_s2_weights(p), columns)


def _s2_adaptive(p: _Pool) -> list[float]:
    weights = wt.cv_weights_adaptive(_s2_weights(p), (p.w, p.c, p.r))
    return _combine(weights, [_complement(nz.min_max(x)) for x in (p.w, p.c, p.r)])


def _s2_ad_columns(p: _Pool) -> list[list[float]]:
    """(1 - ad) of W, C and R with the original's per-metric type labels."""
    return [
        _complement(nz.adaptive_distribution(x, kind))
        for x, kind in ((p.w, "waiting_queue"), (p.c, "cache_usage"), (p.r, "running_req"))
    ]


def _s2_advanced(p: _Pool) -> list[float]:
    return _combine(wt.cv_weights_advanced(_s2_weights(p), (p.w, p.c, p.r)), _s2_ad_columns(p))


def _s2_dynamic_waiting(p: _Pool) -> list[float]:
    weights = wt.dynamic_weights_s2(_s2_weights(p), p.w, p.transition_point, p.steepness)
    return _combine(weights, _s2_ad_columns(p))


_MODES: dict[str, ModeFn] = {
    "s1": _s1,
    "s1_enhanced": _s1_enhanced,
    "s1_adaptive": _s1_adaptive,
    "s1_ratio": _s1_ratio,
    "s1_precise": _s1_precise,
    "s1_nonlinear": _s1_nonlinear,
    "s1_balanced": _s1_balanced,
    "s1_adaptive_distribution": _s1_adaptive_distribution,
    "s1_advanced": _s1_advanced,
    "s1_dynamic_waiting": _s1_dynamic_waiting,
    "s2": _s2,
    "s2_enhanced": _s2_enhanced,
    "s2_nonlinear": _s2_nonlinear,
    "s2_adaptive": _s2_adaptive,
    "s2_advanced": _s2_advanced,
    "s2_dynamic_waiting": _s2_dynamic_waiting,
}
assert tuple(_MODES) == ORIGINAL_MODE_NAMES, "every original mode needs exactly one implementation"

_UNCLAMPED = frozenset({"s1_ratio"})


_metric = finite_metric


def _weight(weights: Mapping[str, object], key: str) -> float:
    """weights[key] as a float, the original's default when absent or None."""
    value = weights.get(key)
    return _DEFAULT_WEIGHTS[key] if value is None else float(value)  # type: ignore[arg-type]


def compute_scores(mode: str, members: list[dict], weights: dict) -> list[float | None]:
    """Score each member with the named mode; None for members the mode cannot score. Order follows members."""
    if mode == saturation.NAME:  # llmsched's own mode reads the member dicts itself (docs/routing.md)
        return saturation.compute_scores(members, weights)
    fn = _MODES.get(mode)
    if fn is None:
        raise ValueError(f"unknown scoring mode {mode!r}; valid modes: {', '.join(MODE_NAMES)}")
    keys = _S2_KEYS if mode.startswith("s2") else _S1_KEYS
    rows: list[tuple[int, list[float]]] = []
    for index, member in enumerate(members):
        values = [_metric(member, k) for k in keys]
        if all(v is not None for v in values):
            rows.append((index, values))  # type: ignore[arg-type]
    result: list[float | None] = [None] * len(members)
    if not rows:
        return result
    columns = [[values[i] for _, values in rows] for i in range(len(keys))]
    pool = _Pool(
        w=columns[0],
        c=columns[1],
        r=columns[2] if len(columns) > 2 else [],
        w_a=_weight(weights, "w_a"),
        w_b=_weight(weights, "w_b"),
        w_g=_weight(weights, "w_g"),
        transition_point=_weight(weights, "transition_point"),
        steepness=_weight(weights, "steepness"),
    )
    scores = fn(pool)
    clamp = mode not in _UNCLAMPED
    for (index, _), score in zip(rows, scores):
        result[index] = min(1.0, max(0.0, score)) if clamp else score
    return result
