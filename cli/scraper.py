"""`llmsched scraper --config FILE`: scrape every pool member's engine `/metrics` into Redis until SIGTERM/SIGINT.

Members come from Redis (the poller's membership); the scraper never talks to BIG-IP. Exit codes: 0 after a
signal, 1 when the configuration is invalid or names no Redis. Engines or Redis being unreachable is never a
reason to exit: failures are recorded per member, Redis is retried every cycle. Valid edits of the config file
are applied between cycles (llmsched.shared.reload.ConfigWatcher). Several scrapers may run: they split the members
among themselves (llmsched.collectors.shards, docs/ha.md), and take over a dead one's share within about 4 s.
"""

from __future__ import annotations

import argparse
from typing import Any

HELP = "scrape the engines' /metrics into Redis (the collector of load metrics)"
SHUTDOWN_GRACE_S = 3.0  # closing the HTTP session must not hold SIGTERM past the 5 s budget


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="scheduler-config.yaml to run with")
    parser.add_argument(
        "--redis-url", help="Redis URL (default: $REDIS_URL, else the config's redis.url or redis.sentinels)"
    )


def run(args: argparse.Namespace) -> int:
    import asyncio

    import aiohttp
    from loguru import logger

    from llmsched.cli.process import (
        COLLECTOR_REDIS_TIMEOUT,
        LEASE_REDIS_TIMEOUT_MAX,
        run_until_signal,
        start,
        watching,
    )
    from llmsched.collectors.ha import CollectorHA
    from llmsched.collectors.scraper import Scraper
    from llmsched.collectors.shards import Shards
    from llmsched.collectors.telemetry import ScrapeTelemetry
    from llmsched.shared import telemetry
    from llmsched.shared.config_model import Config
    from llmsched.shared.keys import Keys
    from llmsched.shared.logging import setup_logging
    from llmsched.shared.redis_conn import client_for
    from llmsched.shared.reload import ConfigWatcher
    from llmsched.shared.watchdog import WATCH_INTERVAL_S

    started = start(args, "scraper")
    if started is None:
        return 1
    config = started.config
    scrape_telemetry = ScrapeTelemetry()
    telemetry.serve("scraper", config.telemetry, extra=[scrape_telemetry])
    store = started.store(COLLECTOR_REDIS_TIMEOUT)
    ttl = config.scheduler.ha_lease_ttl
    shards = Shards(
        client_for(started.redis, socket_timeout=min(LEASE_REDIS_TIMEOUT_MAX, ttl / 3)),
        Keys(config.redis.namespace).shard_members("scraper"),
        ttl,
    )

    async def main(stop) -> None:
        # One session for the process: keep-alive across cycles. The connector's own cap is off because
        # scheduler.scrape_concurrency (collectors/bounded.py, hot-reloadable) is the limit.
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), trust_env=False)
        scraper = Scraper(
            config,
            store,
            session,
            duty=CollectorHA("scraper", store, watch_interval=WATCH_INTERVAL_S, shards=shards),
            telemetry=scrape_telemetry,
        )

        def on_change(new: Config) -> None:
            old = watcher.config  # the config in force until this change is applied
            if (new.global_.log_level, new.global_.log_format) != (old.global_.log_level, old.global_.log_format):
                setup_logging("scraper", new.global_.log_level, new.global_.log_format)
            scraper.apply_config(new)

        # The scraper publishes each config it applies itself, retrying every cycle while Redis is down.
        watcher = ConfigWatcher(args.config, config, on_change=on_change, process="scraper")
        logger.info(
            "scraper started: {} pool(s), every {} ms, up to {} scrapes at once; Redis {}; shard member {}",
            len(config.pools),
            config.scheduler.metrics_fetch_interval,
            config.scheduler.scrape_concurrency,
            started.redis.describe(),
            shards.holder,
        )
        try:
            async with watching(watcher):
                await scraper.run(stop)
        finally:
            scraper.close()
            try:
                await asyncio.wait_for(session.close(), timeout=SHUTDOWN_GRACE_S)
            except TimeoutError:
                logger.warning("HTTP session did not close within {} s", SHUTDOWN_GRACE_S)
        logger.info("scraper stopped")

    use_uvloop(logger)
    tune_gc()
    return run_until_signal(main)


GC_YOUNG_THRESHOLD = 50_000  # Python's default is 700


def tune_gc() -> None:
    """Fewer garbage collections for a process that keeps thousands of small documents alive: the objects of the
    start-up (modules, configuration) are left out of every later collection, and a collection of the young
    generation waits for 50,000 new container objects instead of 700. The scraper's garbage is freed by reference
    counting; the collector only finds cycles, which it makes few of (docs/benchmarks.md has the saving)."""
    import gc

    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def use_uvloop(logger: Any) -> bool:
    """Run the scraper on uvloop when it is installed (less CPU per scrape: docs/benchmarks.md);
    LLMSCHED_SCRAPER_LOOP=asyncio keeps the standard loop. True when uvloop is used."""
    import asyncio
    import os
    import warnings

    if os.environ.get("LLMSCHED_SCRAPER_LOOP", "uvloop").lower() == "asyncio":
        return False
    try:
        import uvloop
    except ImportError:
        logger.info("uvloop is not installed: the scraper runs on the standard asyncio loop")
        return False
    with warnings.catch_warnings():  # event loop policies are deprecated from Python 3.14 on, still working
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True
