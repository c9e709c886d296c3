"""`llmsched scorer --config FILE`: run the scoring worker (rq), which turns collected data into score snapshots.

With `--report` it prints instead the scoring latency recorded in Redis (request -> snapshot written, per job
reason: `scrape`, `membership`, `periodic`, `config`, `start`) and exits.
"""

from __future__ import annotations

import argparse
import sys

HELP = "run the scoring worker that turns collected metrics into score snapshots (rq)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="scheduler-config.yaml (Redis, pools, mode, intervals)")
    parser.add_argument("--name", help="rq worker name (default llmsched-scorer-<host>-<pid>)")
    parser.add_argument("--report", action="store_true", help="print the recorded scoring latency and exit")


def format_report(report: dict[str, dict]) -> str:
    if not report:
        return "no scoring latency recorded yet"
    lines = [
        f"{'reason':<11} {'jobs':>8} {'mean ms':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        f"  (percentiles over the last {max(e['recent'] for e in report.values())} jobs)"
    ]
    for reason, e in sorted(report.items()):
        lines.append(
            f"{reason:<11} {e['count']:>8} {e['mean'] * 1000:>9.2f} {e['p50'] * 1000:>8.2f} "
            f"{e['p90'] * 1000:>8.2f} {e['p99'] * 1000:>8.2f} {e.get('max', 0.0) * 1000:>8.2f}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from llmsched.cli.process import start
    from llmsched.shared.errors import StoreError

    started = start(args, "scorer")
    if started is None:
        return 1
    config = started.config
    from llmsched.scorer.worker import ScoringWorker

    worker = ScoringWorker(config, args.config, name=args.name, target=started.redis)
    if args.report:
        from llmsched.scorer.jobs import latency_report

        try:
            print(format_report(latency_report(worker.store)))
        except StoreError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    from llmsched.scorer.telemetry import ScoringCollector
    from llmsched.shared.telemetry import serve

    serve("scorer", config.telemetry, extra=[ScoringCollector(worker.store)])
    return worker.run()
