"""`llmsched seed`: put a scored pool into Redis by hand, to try the API without BIG-IP or engines.

It writes exactly what the collectors would (the pool's routing config, a membership, one scrape per member)
and then runs the real scoring step, so the API answers from a snapshot built like a production one.
"""

from __future__ import annotations

import argparse
import os
import random
import time

from llmsched.scorer.step import score_pool
from llmsched.shared.config_fields import mask_url
from llmsched.shared.config_model import MODE_NAMES, Config, FallbackConfig, ModeConfig, PoolConfig, SchedulerConfig
from llmsched.shared.members import Member
from llmsched.shared.publish import publish_config
from llmsched.shared.store import Store, connect

HELP = "write a scored example pool into Redis, to try the API by hand"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
        help="the Redis the API reads: $REDIS_URL (keeps a password off the command line), else redis://127.0.0.1:6379/0",
    )
    parser.add_argument(
        "--namespace", default="llmsched", help="key prefix, as redis.namespace in the config (default: %(default)s)"
    )
    parser.add_argument(
        "--pool", default="example_pool1", help="BIG-IP pool name the iRule will send (default: %(default)s)"
    )
    parser.add_argument("--partition", default="Common", help="BIG-IP partition of the pool (default: %(default)s)")
    parser.add_argument(
        "--engine-type",
        default="vllm",
        choices=("vllm", "sglang", "auto"),
        help="engine recorded for the pool and its members (default: %(default)s)",
    )
    parser.add_argument(
        "--members",
        default="127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003",
        help="comma-separated ip:port list, as BIG-IP would report the pool (default: %(default)s)",
    )
    parser.add_argument(
        "--mode",
        default="s1",
        choices=MODE_NAMES,
        metavar="MODE",
        help=f"scoring mode, one of {', '.join(MODE_NAMES)} (default: %(default)s)",
    )
    parser.add_argument(
        "--metrics", default=None, help="per-member waiting/cache/running, e.g. '2,0.2,5;8,0.7,20' (default: random)"
    )
    parser.add_argument(
        "--stale-after",
        type=float,
        default=3600.0,
        help="seconds the seeded metrics stay fresh (default: an hour, for trying things by hand)",
    )
    parser.add_argument("--fallback", action="store_true", help="set pool_fallback")
    parser.add_argument(
        "--no-herd-control",
        dest="herd_control",
        action="store_false",
        help="picks follow the scores exactly (no accounting of decisions since the last scrape)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed for generated metrics")


def seed_pool(
    store: Store,
    pool: PoolConfig,
    mode: ModeConfig,
    members: list[Member],
    metrics: list[dict],
    stale_after: float,
    now: float | None = None,
    herd_control: bool = True,
) -> dict:
    """Publish one pool, its members and their metrics, then score it; returns the snapshot."""
    now = time.time() if now is None else now
    config = Config(
        pools=(pool,),
        modes=(mode,),
        source="llmsched seed",
        scheduler=SchedulerConfig(stale_after=stale_after, herd_control=herd_control),
        generation=time.time_ns(),  # seeding by hand is the newest config: it replaces a published one
    )
    publish_config(store, config, "seed")
    store.set_members(pool.key, {"fetched_at": now, "members": [m.to_dict() for m in members], "error": None})
    store.set_metrics(
        pool.key,
        {
            m.id: {"scraped_at": now, "status": "ok", "metrics": values, "detected_variant": pool.engine_type}
            for m, values in zip(members, metrics)
        },
        keep=[m.id for m in members],
    )
    return score_pool(store, pool.key, now)


def parse_metrics(text: str | None, count: int, rng: random.Random) -> list[dict]:
    if text is None:
        return [
            {
                "waiting_queue": float(rng.randint(0, 20)),
                "cache_usage": round(rng.uniform(0.05, 0.95), 3),
                "running_req": float(rng.randint(1, 64)),
            }
            for _ in range(count)
        ]
    rows = [r for r in text.split(";") if r.strip()]
    if len(rows) != count:
        raise SystemExit(f"--metrics: {len(rows)} rows for {count} members")
    out = []
    for i, row in enumerate(rows):
        try:
            w, c, r = (float(x) for x in row.split(","))
        except ValueError:
            raise SystemExit(f"--metrics row {i + 1}: expected waiting,cache,running numbers, got {row!r}") from None
        out.append({"waiting_queue": w, "cache_usage": c, "running_req": r})
    return out


def run(args: argparse.Namespace) -> int:
    members = []
    for text in args.members.split(","):
        address, _, port = text.strip().rpartition(":")
        if not address or not port.isdigit():
            raise SystemExit(f"--members: {text!r} is not ip:port")
        members.append(Member(address=address, port=int(port), name=text.strip()))
    store = Store(connect(args.redis_url, socket_timeout=2.0), args.namespace)
    pool = PoolConfig(
        name=args.pool,
        partition=args.partition,
        engine_type=args.engine_type,
        fallback=FallbackConfig(pool_fallback=args.fallback),
    )
    metrics = parse_metrics(args.metrics, len(members), random.Random(args.seed))
    snapshot = seed_pool(
        store, pool, ModeConfig(name=args.mode), members, metrics, args.stale_after, herd_control=args.herd_control
    )
    for m in snapshot["members"]:
        print(f"{m['id']}\tscore={m['score']}\t{m['metrics']}")
    print(f"seeded pool {pool.key} ({args.mode}) in {mask_url(args.redis_url)} namespace {args.namespace}")
    return 0
