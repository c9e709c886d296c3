"""The threshold sweep of the sticky prefix pick (llmsched.shared.routing.prefix), on the prefix scenarios.

`python -m llmsched.bench.sim.prefix_sweep [--seeds 1,2] [--markdown]` runs `default` with every
(THRESHOLD, NEAR) pair below on each scenario and seed, beside the references `default_no_prefix`,
`prefix_only` and `oracle` measured in the same run, and prints TTFT p90 / p99 (mean over the seeds) and the
cache hit rate. docs/routing.md "Prefix-aware routing" shows the table and the choice it led to.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Sequence

from llmsched.bench.sim import runner, scenario
from llmsched.shared.routing import prefix

SCENARIOS = ("shared_prefix", "chat_sessions", "rag_mixed_fleet", "long_prompts_mixed_fleet_shared")
THRESHOLDS = (0.5, 0.8, 1.0, 1.5, math.inf)
NEARS = (0.5, 0.9)
REFERENCES = ("default_no_prefix", "prefix_only", "oracle")


def measure(names: Sequence[str], seeds: Sequence[int]) -> dict[str, dict[str, tuple[float, float, float]]]:
    """scenario -> row label -> (TTFT p90, TTFT p99, cache hit rate), each the mean over the seeds."""
    saved = prefix.THRESHOLD, prefix.NEAR
    out: dict[str, dict[str, tuple[float, float, float]]] = {}
    try:
        for name in names:
            sc = scenario.load(name)
            rows: dict[str, list[tuple[float, float, float]]] = {}
            for seed in seeds:
                prepared = runner.prepare(sc, seed)
                for ref in REFERENCES:
                    r = runner.run(prepared, ref)
                    rows.setdefault(ref, []).append((r.ttft_p90, r.ttft_p99, r.cache_hit_rate))
                for threshold in THRESHOLDS:
                    for near in NEARS:
                        prefix.THRESHOLD, prefix.NEAR = threshold, near
                        r = runner.run(prepared, "default")
                        rows.setdefault(label(threshold, near), []).append((r.ttft_p90, r.ttft_p99, r.cache_hit_rate))
                print(f"{name} seed {seed} done", file=sys.stderr, flush=True)
            out[name] = {k: tuple(statistics.fmean(v[i] for v in vs) for i in range(3)) for k, vs in rows.items()}  # type: ignore[misc]
    finally:
        prefix.THRESHOLD, prefix.NEAR = saved
    return out


def label(threshold: float, near: float) -> str:
    return f"default threshold {threshold:g} near {near:g}"


def markdown(results: dict[str, dict[str, tuple[float, float, float]]], seeds: Sequence[int]) -> str:
    names = list(results)
    head = "| policy | " + " | ".join(f"{n} p90 / p99 (ms), hits" for n in names) + " |"
    lines = [
        f"`python -m llmsched.bench.sim.prefix_sweep --seeds {','.join(map(str, seeds))} --markdown` "
        f"(mean over seeds {', '.join(map(str, seeds))})",
        "",
        head,
        "|---|" + "---:|" * len(names),
    ]
    for row in results[names[0]]:
        cells = []
        for n in names:
            p90, p99, hits = results[n][row]
            cells.append(f"{p90 * 1000:.0f} / {p99 * 1000:.0f}, {hits:.0%}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", default="1,2", help="comma-separated seeds (default 1,2)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated scenario names")
    parser.add_argument("--markdown", action="store_true", help="a Markdown table (default: the same, as text)")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    try:
        results = measure(names, seeds)
    except scenario.ScenarioError as exc:
        print(f"prefix_sweep: {exc}", file=sys.stderr)
        return 2
    print(markdown(results, seeds), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
