"""`llmsched bench routing`: the routing simulator (docs/routing.md).

Simulates vLLM engines with continuous batching behind one BIG-IP pool and compares routing policies on the
same client requests: BIG-IP's own methods, every original scoring mode, llmsched's default mode through the
real scoring and decision code, and an oracle. Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = "routing simulator: compare policies on shipped or custom scenarios (bench routing --help)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", required=True, metavar="BENCH")
    routing = sub.add_parser(
        "routing",
        help="simulate routing policies on a scenario",
        description="Simulate routing policies on a scenario (docs/routing.md).",
    )
    what = routing.add_mutually_exclusive_group(required=True)
    what.add_argument("--list", action="store_true", help="print the shipped scenario names, one per line")
    what.add_argument("--scenario", metavar="NAME|FILE.yaml", help="a shipped scenario name or a scenario file")
    what.add_argument("--all", action="store_true", help="run every shipped scenario")
    what.add_argument(
        "--sweep",
        action="append",
        metavar="NAME|FILE.yaml",
        help="run a scenario's concurrency sweep and print it beside the published measurements (repeatable)",
    )
    routing.add_argument("--seed", type=int, default=None, help="random seed (default: the scenario's or sweep's)")
    routing.add_argument(
        "--concurrency",
        type=int,
        default=None,
        metavar="N",
        help="N closed-loop clients instead of the scenario's arrivals (not with --sweep)",
    )
    routing.add_argument(
        "--policies",
        default=None,
        metavar="A,B,...",
        help="only these policies, in this order (default: the scenario's list)",
    )
    out = routing.add_mutually_exclusive_group()
    out.add_argument(
        "--json", action="store_true", help='one JSON object {"scenario", "results": [...]} (with --all: one per line)'
    )
    out.add_argument("--markdown", action="store_true", help="Markdown tables, as in docs/routing.md")


def run(args: argparse.Namespace) -> int:
    from llmsched.bench.sim import report, scenario

    policies = [p.strip() for p in args.policies.split(",") if p.strip()] if args.policies else None
    try:
        if args.list:
            for name in scenario.shipped():
                print(name)
            return 0
        if args.sweep:
            return _sweeps(args, [scenario.load(n) for n in args.sweep])
        scenarios = [scenario.load(n) for n in scenario.shipped()] if args.all else [scenario.load(args.scenario)]
        if args.concurrency is not None:
            scenarios = [sc.with_concurrency(args.concurrency) for sc in scenarios]
        for p in policies or ():
            if p not in scenario.known_policies():
                raise scenario.ScenarioError(
                    f"--policies: unknown policy {p!r}; known: {', '.join(scenario.known_policies())}"
                )
    except scenario.ScenarioError as exc:
        print(f"llmsched bench routing: {exc}", file=sys.stderr)
        return 2
    for i, sc in enumerate(scenarios):
        prepared, results = report.run_scenario(sc, args.seed, policies, report.stderr_progress)
        if args.json:
            print(json.dumps(report.to_json(sc, results)), flush=True)
        elif args.markdown:
            print(report.markdown(prepared, results), flush=True)
        else:
            if i:
                print()
            report.print_text(prepared, results)
    return 0


def _sweeps(args: argparse.Namespace, scenarios: list) -> int:
    from llmsched.bench.sim import compare, report, scenario

    for sc in scenarios:
        if sc.sweep is None:
            raise scenario.ScenarioError(f"{sc.source}: --sweep needs a scenario with a `sweep` section")
    if args.concurrency is not None or args.policies:
        raise scenario.ScenarioError("--sweep sets its own concurrencies and policies (no --concurrency/--policies)")
    for i, sc in enumerate(scenarios):
        seeds = [args.seed] if args.seed is not None else None
        points = compare.run_sweep(sc, seeds, report.stderr_progress)
        if args.json:
            print(json.dumps(compare.to_json(sc, points)), flush=True)
        else:
            if i:
                print()
            print(compare.markdown(sc, points), flush=True)
    return 0
