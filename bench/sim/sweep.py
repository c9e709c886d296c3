"""A scenario's `sweep`: closed loops at several concurrencies, and the published measurements to hold them to.

    sweep:
      concurrency: [10, 20, 30, 40, 50]
      seeds: [1, 2, 3]                 # each point is the mean over these seeds (default: the scenario's seed)
      original: s1_enhanced_no_herd    # the policy the published run measured
      baseline: least_conn             # what the published changes are relative to
      tolerance: 10                    # percentage points the simulated mean TTFT change may differ by
      source: one line naming the measurement
      published:                       # TTFT change vs the baseline in %, negative = faster than the baseline
        - {concurrency: 10, mean: -16.48, median: -28.05, p99: -19.11, tpot: -16.88}   # tpot: mean TPOT change
        - {concurrency: 200, mean: 22.61, median: 10.92, p99: 117.26, tolerance: 20}

Only the spec and its schema live here; bench/sim/compare.py runs a sweep and prints it beside the published rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

SIGN_THRESHOLD = 3.0  # %: a published change at least this large must keep its sign in the simulation


@dataclass(frozen=True)
class PublishedRow:
    concurrency: int
    mean: float  # TTFT changes vs the baseline, %
    median: float
    p99: float
    tolerance: float  # percentage points allowed on the mean change
    tpot: float | None = None  # mean TPOT change, %: shown beside the simulated one, not held to a tolerance

    def mean_matches(self, simulated: float) -> bool:
        """Within the tolerance, and on the same side of zero wherever the published change is clear."""
        if abs(simulated - self.mean) > self.tolerance:
            return False
        return abs(self.mean) < SIGN_THRESHOLD or (simulated > 0) == (self.mean > 0)


@dataclass(frozen=True)
class Sweep:
    concurrency: tuple[int, ...]
    seeds: tuple[int, ...]  # empty: the scenario's seed
    original: str
    baseline: str
    source: str
    published: tuple[PublishedRow, ...]

    def row(self, concurrency: int) -> PublishedRow | None:
        return next((r for r in self.published if r.concurrency == concurrency), None)


def _number(d: dict, key: str, where: str, default: float | None = None) -> float:
    value = d.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}.{key}: must be a number, not {value!r}")
    return float(value)


def _ints(value: object, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ValueError(f"{where}: must be a list of integers")
    return tuple(value)


def _check_keys(d: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ValueError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(allowed))})")


def parse_sweep(d: dict, policies: Iterable[str]) -> Sweep:
    _check_keys(d, {"concurrency", "seeds", "original", "baseline", "tolerance", "source", "published"}, "sweep")
    concurrency = _ints(d.get("concurrency"), "sweep.concurrency")
    if not concurrency or min(concurrency) < 1:
        raise ValueError("sweep.concurrency: at least one concurrency, each >= 1")
    seeds = _ints(d.get("seeds", []), "sweep.seeds")
    known = set(policies)
    names = {}
    for key, default in (("original", None), ("baseline", "least_conn")):
        name = d.get(key, default)
        if name not in known:
            raise ValueError(f"sweep.{key}: unknown policy {name!r}")
        names[key] = str(name)
    tolerance = _number(d, "tolerance", "sweep", 10.0)
    rows = []
    raw_rows = d.get("published") or []
    if not isinstance(raw_rows, list):
        raise ValueError("sweep.published: must be a list")
    for i, r in enumerate(raw_rows):
        where = f"sweep.published[{i}]"
        if not isinstance(r, dict):
            raise ValueError(f"{where}: must be a mapping")
        _check_keys(r, {"concurrency", "mean", "median", "p99", "tpot", "tolerance"}, where)
        c = r.get("concurrency")
        if c not in concurrency:
            raise ValueError(f"{where}.concurrency: {c!r} is not one of sweep.concurrency")
        values = [_number(r, k, where) for k in ("mean", "median", "p99")]
        tpot = _number(r, "tpot", where) if "tpot" in r else None
        rows.append(PublishedRow(int(c), *values, tolerance=_number(r, "tolerance", where, tolerance), tpot=tpot))
    return Sweep(concurrency, seeds, names["original"], names["baseline"], str(d.get("source") or ""), tuple(rows))
