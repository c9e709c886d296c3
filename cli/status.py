"""`llmsched status`: the status page's table in the terminal, read straight from Redis (no API needed).

First the live scrapers (members, cycle duration and lateness, members per second, skipped ticks); then for every
pool (or `--pool NAME`): mode, data ages, then one line per member with its BIG-IP state, engine,
waiting / running / KV-cache load, score, expected share (the chance that a decision offering every member picks
it), decisions sent since its last scrape, data age, its prefix-cache hit rate as the engine reports it next to
the prefix index's estimate (`hit% engine/index`, `-` when unknown) and why it cannot be picked; then the pool's
last errors (BIG-IP read, failed scrapes). `--watch S` redraws every S seconds until Ctrl-C; `--json` prints the
raw view.

Redis comes from `--redis-url`, else `$REDIS_URL`, else the `--config` file's `redis.url` (and its namespace).
Exit codes: 0, 1 when Redis cannot be read or the config is invalid, 2 when `--pool` names no configured pool.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "print every pool's members, scores, expected shares, data ages and last errors from Redis"


def _seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis-url", help="Redis URL (default: $REDIS_URL, else the --config file's redis.url)")
    parser.add_argument("--config", metavar="FILE", help="take Redis URL and namespace from this config file")
    parser.add_argument("--namespace", help="Redis key namespace (default: the config's redis.namespace, llmsched)")
    parser.add_argument("--pool", metavar="NAME", help="only this pool (NAME or NAME:PARTITION)")
    parser.add_argument("--watch", type=_seconds, metavar="S", help="redraw every S seconds until Ctrl-C")
    parser.add_argument("--json", action="store_true", help="print the view as JSON (what GET /ui/data.json serves)")


def _cell(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else str(value)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return f"{seconds:.1f}s" if seconds < 100 else f"{seconds / 60:.0f}min"


COLUMNS = (
    "member",
    "BIG-IP",
    "engine",
    "wait",
    "run",
    "kv%",
    "score",
    "share%",
    "sent",
    "age",
    "hit% recent/start/index",
    "eligible / why not",
)


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.0f}"


def format_pool(pool: dict) -> str:
    flags = [
        f"mode {pool['mode'] or 'none'}",
        f"engine {pool['engine_type']}",
        f"eligible {pool['eligible']}/{len(pool['members'])}",
        f"scores {_age(pool['scores_age'])} old",
        f"BIG-IP read {_age(pool['members_age'])} ago",
        f"stale after {_cell(pool['stale_after'], 0)}s",
    ]
    if pool["pool_fallback"]:
        flags.append("POOL_FALLBACK: every answer is fallback")
    rows = [COLUMNS]
    for m in pool["members"]:
        metrics = m["metrics"] or {}
        kv = metrics.get("cache_usage")
        rows.append(
            (
                m["id"],
                m["bigip_status"] or "?",
                m["engine"] or m["variant"] or "-",
                _cell(metrics.get("waiting_queue")),
                _cell(metrics.get("running_req")),
                _cell(kv * 100 if kv is not None else None, 1),
                _cell(m["score"], 4),
                _cell(m["share"] * 100, 1),
                str(m["sent_since_scrape"]),
                _age(m["data_age"]),
                "/".join(_percent(m.get(k)) for k in ("prefix_hit_rate_recent", "prefix_hit_rate", "prefix_estimate")),
                "yes" if m["eligible"] else m["why_not"],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS) - 1)]
    lines = [f"{pool['name']} / {pool['partition']}   " + ", ".join(flags)]
    for row in rows:
        cells = [c.rjust(w) if 3 <= i <= 10 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  " + "  ".join(cells) + "  " + row[-1])
    if not pool["members"]:
        lines.append("  (no members known yet: is the poller running?)")
    for error in pool["errors"]:
        lines.append(f"  ! {error['source']}: {error['message']}")
    return "\n".join(lines)


def format_scrapers(scrapers: list[dict]) -> str:
    """One line per live scraper: its share and its last cycle (they split the members among themselves)."""
    if not scrapers:
        return "scrapers: none reported a cycle in the last 10 s"
    lines = [
        f"scrapers: {len(scrapers)} live, {sum(s.get('members', 0) for s in scrapers)} members in their last cycles"
    ]
    for s in scrapers:
        lines.append(
            f"  {s['holder']}: {s.get('members', 0)} members, cycle {_cell(s.get('cycle_duration'), 3)} s "
            f"(started {_cell(s.get('lateness'), 3)} s late) of {_cell(s.get('interval'), 1)} s, "
            f"{_cell(s.get('members_per_second'))} members/s, {s.get('skipped_ticks', 0)} skipped tick(s); "
            f"reported {_age(s.get('age'))} ago"
        )
    return "\n".join(lines)


def format_status(view: dict) -> str:
    meta = view["config"]
    head = (
        f"config {meta['version']} published by {meta.get('publisher', '?')}"
        if meta.get("version")
        else "no config published in Redis yet"
    )
    if not view["pools"]:
        return head + "\nno pool configured in Redis (start a collector or the scorer with --config)"
    head += "\n" + format_scrapers(view.get("scrapers", []))
    return "\n\n".join([head] + [format_pool(p) for p in view["pools"]])


def _store(args: argparse.Namespace):
    import os

    from llmsched.shared.redis_conn import RedisTarget, client_for, target_from_config
    from llmsched.shared.store import Store

    target, namespace = RedisTarget(url=args.redis_url or os.environ.get("REDIS_URL")), args.namespace
    if args.config:
        from llmsched.shared.config import load_config

        config = load_config(args.config)
        target = target or target_from_config(config.redis)
        namespace = namespace or config.redis.namespace
    if not target:
        raise ValueError(
            "no Redis: pass --redis-url, set REDIS_URL, or --config a file with redis.url or redis.sentinels"
        )
    return Store(client_for(target, socket_timeout=2.0), namespace or "llmsched")


def run(args: argparse.Namespace) -> int:
    import time

    import orjson

    from llmsched.shared.errors import ConfigError, StoreError
    from llmsched.shared.status import read_status, select_pools

    try:
        store = _store(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        while True:
            try:
                wanted = select_pools(store.pool_keys(), args.pool)
                if wanted == []:
                    print(
                        f"error: no configured pool named {args.pool!r} (configured: "
                        f"{', '.join(store.pool_keys()) or 'none'})",
                        file=sys.stderr,
                    )
                    return 2
                view = read_status(store, time.time(), wanted)
            except StoreError as exc:
                print(f"error: cannot read Redis: {exc}", file=sys.stderr)
                if not args.watch:
                    return 1
                view = None
            if args.watch:
                sys.stdout.write("\033[H\033[2J")  # home + clear: redraw in place
                print(f"llmsched status, every {args.watch:g} s (Ctrl-C stops)   {time.strftime('%H:%M:%S')}")
            if view is not None:
                print(
                    orjson.dumps(view, option=orjson.OPT_INDENT_2).decode() if args.json else format_status(view),
                    flush=True,
                )
            if not args.watch:
                return 0
            time.sleep(args.watch)
    except KeyboardInterrupt:
        return 0
