"""`llmsched poller --config FILE`: read pool members from BIG-IP into Redis until SIGTERM/SIGINT.

Exit codes: 0 after a signal (the BIG-IP token is deleted first), 1 when the configuration is invalid or names no
Redis. BIG-IP or Redis being unreachable is never a reason to exit: the poller logs it and retries every cycle.
"""
from __future__ import annotations

import argparse
import sys

HELP = "read pool members from BIG-IP into Redis (the collector of membership and member state)"
COLLECTOR_REDIS_TIMEOUT = 2.0   # s; the poller is off the request path, so it may wait longer than a decision


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="scheduler-config.yaml to run with")
    parser.add_argument("--redis-url", help="Redis URL (default: $REDIS_URL, else the config's redis.url)")


def run(args: argparse.Namespace) -> int:
    import asyncio
    import os
    import signal

    from loguru import logger

    from collectors.poller import Poller
    from shared.config import load_config
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
    setup_logging("poller", config.global_.log_level, config.global_.log_format)
    for warning in config.warnings:
        logger.warning("config: {}", warning)
    telemetry.serve("poller", config.telemetry)
    timeout = max(config.redis.socket_timeout, COLLECTOR_REDIS_TIMEOUT)
    store = Store(connect(url, socket_timeout=timeout), config.redis.namespace)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        poller = Poller(config, store)
        # The poller publishes each config it applies itself (also retrying while Redis is down).
        watcher = ConfigWatcher(args.config, config, on_change=poller.apply_config, process="poller")
        watching = asyncio.create_task(watcher.run_async())
        logger.info("poller started: {} pool(s) on BIG-IP {}:{} ({} auth), every {:g} s", len(config.pools),
                    config.f5.host, config.f5.port, config.f5.auth, config.scheduler.pool_fetch_interval)
        try:
            await poller.run(stop)
        finally:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
        logger.info("poller stopped")

    asyncio.run(main())
    return 0
