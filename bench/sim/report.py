"""Running a scenario's policies with progress, and printing the results as text, JSON or Markdown."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from llmsched.bench.sim import runner
from llmsched.bench.sim.runner import Prepared
from llmsched.bench.sim.scenario import Scenario
from llmsched.bench.sim.stats import Result

Progress = Callable[[str], None]


def stderr_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_scenario(
    scenario: Scenario, seed: int | None, policies: Sequence[str] | None = None, progress: Progress | None = None
) -> tuple[Prepared, list[Result]]:
    """Every policy of the scenario (or the given ones) on the same requests, in order."""
    started = time.monotonic()
    prepared = runner.prepare(scenario, seed)
    names = list(policies or scenario.policies)
    if progress:
        progress(f"{scenario.name}: {offered(prepared)}, {len(names)} policies")
    results = []
    for i, name in enumerate(names, start=1):
        t0 = time.monotonic()
        results.append(runner.run(prepared, name))
        if progress:
            progress(f"  [{i}/{len(names)}] {name:<20} {time.monotonic() - t0:5.1f}s")
    if progress:
        progress(f"  done in {time.monotonic() - started:.1f}s")
    return prepared, results


def offered(prepared: Prepared) -> str:
    """The offered load in words: closed-loop clients, or the open-loop rate and its share of capacity."""
    sc = prepared.scenario
    if sc.arrivals.closed:
        return f"{sc.arrivals.concurrency} closed-loop clients"
    available = sum(prepared.capacity) - sum(prepared.background)
    return f"{len(prepared.requests)} requests at {prepared.rate:.2f}/s ({sc.load:.0%} of {available:.2f}/s)"


def to_json(scenario: Scenario, results: Sequence[Result]) -> dict:
    return {"scenario": scenario.name, "results": [r.to_json() for r in results]}


def _ms(x: float) -> str:
    return "-" if math.isnan(x) else f"{x * 1000:.0f}"


def _share(r: Result) -> str:
    return " ".join(f"{v:.0%}" for v in r.share.values())


def print_text(prepared: Prepared, results: Sequence[Result], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    sc = prepared.scenario
    print(f"scenario {sc.name} (seed {prepared.seed}): {sc.description}", file=out)
    engines = ", ".join(f"{e.name} ({e.profile_name}, {c:.1f} req/s)" for e, c in zip(sc.engines, prepared.capacity))
    print(f"engines: {engines}", file=out)
    load = f"{sc.arrivals.concurrency} closed-loop clients" if sc.arrivals.closed else f"at {prepared.rate:.2f} req/s"
    print(
        f"arrivals: {sc.arrivals.process}, {load}; scrape every "
        f"{sc.pipeline.scrape_interval:g}s; {sc.pipeline.replicas} API replica(s)",
        file=out,
    )
    print(
        f"{'policy':<20} {'TTFT mean':>9} {'p50':>6} {'p90':>7} {'p99':>7} {'TPOT':>6} {'e2e p99':>8} {'req/s':>7} "
        f"{'failed':>6} {'none':>5} {'hit':>5}  share ({' '.join(e.name for e in sc.engines)})",
        file=out,
    )
    for r in results:
        print(
            f"{r.policy:<20} {_ms(r.ttft_mean):>7}ms {_ms(r.ttft_p50):>6} {_ms(r.ttft_p90):>7} {_ms(r.ttft_p99):>7} "
            f"{_ms(r.tpot_mean):>6} {r.e2e_p99:>7.1f}s {r.throughput_rps:>7.2f} {r.failed:>6} "
            f"{r.none_share:>5.0%} {r.cache_hit_rate:>5.0%}  {_share(r)}",
            file=out,
        )


def _concurrency_flag(sc: Scenario) -> str:
    return f" --concurrency {sc.arrivals.concurrency}" if sc.arrivals.closed else ""


def markdown(prepared: Prepared, results: Sequence[Result]) -> str:
    """The table of one scenario for docs/routing.md, with the command that reproduces it."""
    sc = prepared.scenario
    lines = [
        f"#### {sc.name}",
        "",
        f"`llmsched bench routing --scenario {sc.name} --seed {prepared.seed}{_concurrency_flag(sc)}` — "
        f"{sc.description}",
        "",
        "| policy | TTFT mean (ms) | TTFT p50 | TTFT p90 | TTFT p99 | TPOT mean (ms) | e2e p99 (s) | req/s | failed "
        f"| cache hits | share ({', '.join(e.name for e in sc.engines)}) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.policy} | {_ms(r.ttft_mean)} | {_ms(r.ttft_p50)} | {_ms(r.ttft_p90)} | {_ms(r.ttft_p99)} | "
            f"{_ms(r.tpot_mean)} | {r.e2e_p99:.1f} | {r.throughput_rps:.2f} | {r.failed} | "
            f"{r.cache_hit_rate:.0%} | {_share(r)} |"
        )
    return "\n".join(lines) + "\n"
