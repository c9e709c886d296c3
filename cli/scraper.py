"""`llmsched scraper --config FILE`: scrape every pool member's engine `/metrics` into Redis until SIGTERM/SIGINT.

Members come from Redis (the poller's membership); the scraper never talks to BIG-IP. Exit codes: 0 after a
signal, 1 when the configuration is invalid or names no Redis. Engines or Redis being unreachable is never a
reason to exit: failures are recorded per member, Redis is retried every cycle. Valid edits of the config file
are applied between cycles (shared.reload.ConfigWatcher).
"""
from __future__ import annotations

import argparse
import sys

HELP = "scrape the engines' /metrics into Redis (the collector of load metrics)"
COLLECTOR_REDIS_TIMEOUT = 2.0   # s; the scraper is off the request path, so it may wait longer than a decision
SHUTDOWN_GRACE_S = 3.0          # closing the HTTP session must not hold SIGTERM past the 5 s budget


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="scheduler-config.yaml to run with")
    parser.add_argument("--redis-url", help="Redis URL (default: $REDIS_URL, else the config's redis.url)")


def run(args: argparse.Namespace) -> int:
    import asyncio
    import os
    import signal

    import aiohttp
    from loguru import logger

    from collectors.scraper import Scraper
    from shared.config import load_config
    from shared.config_model import Config
    from shared.errors import ConfigError
    from shared.logging import setup_logging
    from shared import telemetry
    from shared.reload import ConfigWatcher
    from shared.store import Store, connect

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for key, messages in sorted(exc.errors.items()):
            for message in messages:
                print(f"{args.config}: {key}: {message}", file=sys.stderr)
        return 1
    url = args.redis_url or os.environ.get("REDIS_URL") or config.redis.url
    if not url:
        print(f"{args.config}: redis.url: not set (set redis.url, $REDIS_URL or --redis-url)", file=sys.stderr)
        return 1
    setup_logging("scraper", config.global_.log_level, config.global_.log_format)
    for warning in config.warnings:
        logger.warning("config: {}", warning)
    telemetry.serve("scraper", config.telemetry)
    timeout = max(config.redis.socket_timeout, COLLECTOR_REDIS_TIMEOUT)
    store = Store(connect(url, socket_timeout=timeout), config.redis.namespace)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # One session for the process: keep-alive across cycles. The connector's own cap is off because
        # scheduler.scrape_concurrency (a semaphore, hot-reloadable) is the limit.
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), trust_env=False)
        scraper = Scraper(config, store, session)

        def on_change(new: Config) -> None:
            old = watcher.config        # the config in force until this change is applied
            if (new.global_.log_level, new.global_.log_format) != (old.global_.log_level, old.global_.log_format):
                setup_logging("scraper", new.global_.log_level, new.global_.log_format)
            scraper.apply_config(new)

        # The scraper publishes each config it applies itself, retrying every cycle while Redis is down.
        watcher = ConfigWatcher(args.config, config, on_change=on_change, process="scraper")
        watching = asyncio.create_task(watcher.run_async())
        logger.info("scraper started: {} pool(s), every {} ms, up to {} scrapes at once", len(config.pools),
                    config.scheduler.metrics_fetch_interval, config.scheduler.scrape_concurrency)
        try:
            await scraper.run(stop)
        finally:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
            try:
                await asyncio.wait_for(session.close(), timeout=SHUTDOWN_GRACE_S)
            except asyncio.TimeoutError:
                logger.warning("HTTP session did not close within {} s", SHUTDOWN_GRACE_S)
        logger.info("scraper stopped")

    asyncio.run(main())
    return 0
