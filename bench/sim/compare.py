"""Running a scenario's sweep (bench/sim/sweep.py) and printing it beside the published measurements.

At every concurrency and seed, the baseline (least connections), the original's mode as it was measured and
llmsched's `default` run on the same closed-loop clients; a TTFT change is (policy - baseline) / baseline of one
seed's run, in %, negative = faster than the baseline, averaged over the seeds (the spread over seeds is shown too).
"""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from llmsched.bench.sim import runner
from llmsched.bench.sim.scenario import Scenario
from llmsched.bench.sim.stats import Result
from llmsched.bench.sim.sweep import PublishedRow

DEFAULT_POLICY = "default"
DEFAULT_LIMIT = 2.0  # %: llmsched's default may be at most this much slower than the baseline (mean TTFT)
METRICS = ("ttft_mean", "ttft_p50", "ttft_p99")
JSON_METRICS = METRICS + ("tpot_mean",)


def change(value: float, baseline: float) -> float:
    """Relative change in %, negative = lower (faster) than the baseline."""
    return (value - baseline) / baseline * 100.0 if baseline > 0 else math.nan


@dataclass
class Point:
    """One concurrency of a sweep: every policy's result on each seed."""

    concurrency: int
    seeds: tuple[int, ...]
    results: dict[str, list[Result]]

    def changes(self, policy: str, baseline: str, metric: str) -> list[float]:
        """Per-seed change of `metric` vs the baseline, %."""
        return [
            change(getattr(r, metric), getattr(b, metric)) for r, b in zip(self.results[policy], self.results[baseline])
        ]

    def mean_change(self, policy: str, baseline: str, metric: str) -> float:
        return statistics.fmean(self.changes(policy, baseline, metric))

    def level(self, policy: str, metric: str) -> float:
        """The metric itself, averaged over the seeds (s)."""
        return statistics.fmean(getattr(r, metric) for r in self.results[policy])


def sweep_policies(sc: Scenario) -> list[str]:
    assert sc.sweep is not None
    return list(dict.fromkeys((sc.sweep.baseline, sc.sweep.original, DEFAULT_POLICY)))


def run_sweep(
    sc: Scenario, seeds: Sequence[int] | None = None, progress: Callable[[str], None] | None = None
) -> list[Point]:
    sweep = sc.sweep
    if sweep is None:
        raise ValueError(f"{sc.source}: the scenario has no sweep")
    seeds = tuple(seeds or sweep.seeds or (sc.seed,))
    points = []
    for c in sweep.concurrency:
        point = Point(c, seeds, {p: [] for p in sweep_policies(sc)})
        for seed in seeds:
            prepared = runner.prepare(sc.with_concurrency(c), seed)
            for policy in point.results:
                point.results[policy].append(runner.run(prepared, policy))
        if progress:
            progress(f"{sc.name}: concurrency {c}, seeds {', '.join(map(str, seeds))} done")
        points.append(point)
    return points


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:+.1f}"


def _spread(xs: list[float]) -> str:
    return f"{min(xs):+.0f}..{max(xs):+.0f}" if len(xs) > 1 else ""


def verdicts(sc: Scenario, point: Point) -> tuple[str, str]:
    """(does the original's simulated mean change match the published one, does default meet its target)."""
    sweep = sc.sweep
    assert sweep is not None
    row: PublishedRow | None = sweep.row(point.concurrency)
    orig = point.mean_change(sweep.original, sweep.baseline, "ttft_mean")
    dflt = point.mean_change(DEFAULT_POLICY, sweep.baseline, "ttft_mean")
    match = "-" if row is None else ("yes" if row.mean_matches(orig) else "NO")
    ok = dflt <= DEFAULT_LIMIT and (orig <= 0 or dflt < orig)
    return match, "yes" if ok else "NO"


def markdown(sc: Scenario, points: Sequence[Point]) -> str:
    """The side-by-side table: published row, simulated original mode, llmsched's default, all vs the baseline."""
    sweep = sc.sweep
    assert sweep is not None
    seeds = points[0].seeds if points else ()
    lines = [
        f"#### {sc.name}: {sweep.original} and {DEFAULT_POLICY} vs {sweep.baseline}",
        "",
        f"`llmsched bench routing --sweep {sc.name}` (seeds {', '.join(map(str, seeds))}) — {sc.description}",
        "",
        f"TTFT change vs `{sweep.baseline}` in %, negative = faster; mean / median / p99. Published: {sweep.source}. "
        f"Simulated: mean over the seeds (the range of the mean change over seeds in brackets). `match`: within "
        f"the tolerance of the published mean change and on its side of zero where that exceeds 3 %. "
        f"`target`: `{DEFAULT_POLICY}` at most {DEFAULT_LIMIT:+.0f} % and better than `{sweep.original}` where "
        f"that loses. `TPOT`: mean TPOT change of `{sweep.original}`, published / simulated (not a calibration "
        f"target: an out-of-sample check).",
        "",
        f"| concurrency | published ({sweep.original}) | simulated {sweep.original} | match (tolerance) | "
        f"simulated {DEFAULT_POLICY} | target | TPOT | {sweep.baseline} TTFT mean / p99 (ms) |",
        "|---:|---|---|---|---|---|---|---|",
    ]
    for point in points:
        row = sweep.row(point.concurrency)
        pub = "-" if row is None else f"{_pct(row.mean)} / {_pct(row.median)} / {_pct(row.p99)}"
        cells = []
        for policy in (sweep.original, DEFAULT_POLICY):
            ch = [point.mean_change(policy, sweep.baseline, m) for m in METRICS]
            spread = _spread(point.changes(policy, sweep.baseline, "ttft_mean"))
            cells.append(" / ".join(map(_pct, ch)) + (f" ({spread})" if spread else ""))
        match, target = verdicts(sc, point)
        tol = "" if row is None else f" (±{row.tolerance:g})"
        mean_ms, p99_ms = (point.level(sweep.baseline, m) * 1000 for m in ("ttft_mean", "ttft_p99"))
        base = f"{mean_ms:.0f} / {p99_ms:.0f}"
        tpot = _pct(point.mean_change(sweep.original, sweep.baseline, "tpot_mean"))
        if row is not None and row.tpot is not None:
            tpot = f"{_pct(row.tpot)} / {tpot}"
        lines.append(
            f"| {point.concurrency} | {pub} | {cells[0]} | {match}{tol} | {cells[1]} | {target} | {tpot} | {base} |"
        )
    return "\n".join(lines) + "\n"


def to_json(sc: Scenario, points: Sequence[Point]) -> dict:
    sweep = sc.sweep
    assert sweep is not None
    out = []
    for point in points:
        row = sweep.row(point.concurrency)
        match, target = verdicts(sc, point)
        out.append(
            {
                "concurrency": point.concurrency,
                "seeds": list(point.seeds),
                "published": None
                if row is None
                else {
                    "ttft_mean": row.mean,
                    "ttft_p50": row.median,
                    "ttft_p99": row.p99,
                    "tpot_mean": row.tpot,
                    "tolerance": row.tolerance,
                },
                "simulated": {
                    p: {m: point.mean_change(p, sweep.baseline, m) for m in JSON_METRICS}
                    for p in point.results
                    if p != sweep.baseline
                },
                "baseline": {m: point.level(sweep.baseline, m) for m in JSON_METRICS},
                "match": match == "yes" if row is not None else None,
                "default_target": target == "yes",
            }
        )
    return {"scenario": sc.name, "baseline": sweep.baseline, "original": sweep.original, "points": out}


def print_text(sc: Scenario, points: Sequence[Point], out: TextIO | None = None) -> None:
    print(markdown(sc, points), file=out or sys.stdout)
