"""`make bench-scoring`: metrics-to-score latency through a real scoring worker and a real Redis.

Starts a private redis-server and `llmsched scorer`, then (1) enqueues 1000 scoring jobs for one 16-member pool one
at a time, as scrapes finishing while the worker is idle do, and (2) asks for 100 pools at once, as a scrape cycle
of a large installation does. Latency = scoring job enqueued (scrape written) -> snapshot written, as the worker
records it in Redis (`llmsched scorer --report` prints the same numbers for a live deployment).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from llmsched.bench.processes import private_redis, stopping

REPO = Path(__file__).resolve().parents[1]


def wait_for(what: str, check, timeout: float = 60.0, poll: float = 0.0005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(poll)
    raise SystemExit(f"timed out waiting for {what}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--pools", type=int, default=100)
    args = ap.parse_args(argv)

    from llmsched.cli.scorer import format_report
    from llmsched.scorer.jobs import latency_report
    from llmsched.shared.members import Member
    from llmsched.shared.scoring_queue import enqueue_scoring

    from tests.helpers import make_store

    with private_redis() as (url, workdir), stopping() as procs:
        pools = [f"p{i}" for i in range(args.pools)]
        config = {
            "f5": {"host": "127.0.0.1", "password_env": "BENCH_F5_PASSWORD"},
            "scheduler": {"metrics_fetch_interval": 60_000, "stale_after": 3600},
            "pools": [{"name": p, "engine_type": "vllm"} for p in pools],
        }
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        env = {**os.environ, "REDIS_URL": url, "BENCH_F5_PASSWORD": "unused", "PYTHONPATH": str(REPO)}
        with open(workdir / "scorer.log", "wb") as log:
            procs(
                subprocess.Popen(
                    [sys.executable, "-m", "llmsched.cli.main", "scorer", "--config", str(workdir / "config.yaml")],
                    cwd=REPO,
                    env=env,
                    stdout=log,
                    stderr=log,
                )
            )
        store = make_store(url)
        wait_for("the published config", lambda: len(store.pool_keys()) == args.pools, timeout=30)
        now = time.time()
        for pool in pools:
            members = [Member(address=f"10.0.{i}.1", port=8000) for i in range(16)]
            store.set_members(f"{pool}:Common", {"fetched_at": now, "members": [m.to_dict() for m in members]})
            store.set_metrics(
                f"{pool}:Common",
                {
                    m.id: {
                        "status": "ok",
                        "scraped_at": now,
                        "metrics": {"waiting_queue": float(i), "cache_usage": i / 20, "running_req": 2.0 * i},
                    }
                    for i, m in enumerate(members)
                },
            )
        store.client.delete(store.keys.scoring_latency, store.keys.scoring_latency_recent)
        pending = store.keys.pool_scoring_pending("p0:Common")
        print(
            f"llmsched bench-scoring: 1 worker, 16-member pools, Redis on 127.0.0.1 ({os.cpu_count()} cores)",
            file=sys.stderr,
        )
        for i in range(args.jobs):
            wait_for("the previous job", lambda: not store.client.exists(pending))
            enqueue_scoring(store, "p0:Common", "sequential")
            if (i + 1) % 250 == 0:
                print(f"  {i + 1}/{args.jobs} sequential jobs", file=sys.stderr)
        wait_for("the sequential jobs", lambda: latency_report(store).get("sequential", {}).get("count") == args.jobs)
        for pool in pools:
            enqueue_scoring(store, f"{pool}:Common", "burst")
        wait_for("the burst", lambda: latency_report(store).get("burst", {}).get("count") == args.pools)
        print(f"scoring latency: {args.jobs} sequential jobs on one pool, then {args.pools} pools at once")
        print(format_report(latency_report(store)))
        print(f"    command: {sys.executable} -m llmsched.bench.scoring_bench --jobs {args.jobs} --pools {args.pools}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
