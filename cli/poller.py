"""`llmsched poller --config FILE`: read pool members from BIG-IP into Redis until SIGTERM/SIGINT.

Exit codes: 0 after a signal (the BIG-IP token is deleted first), 1 when the configuration is invalid or names no
Redis. BIG-IP or Redis being unreachable is never a reason to exit: the poller logs it and retries every cycle.
Several pollers may run: only the holder of the `poller` lease polls BIG-IP, the others stand by (docs/ha.md).
"""

from __future__ import annotations

import argparse

HELP = "read pool members from BIG-IP into Redis (the collector of membership and member state)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="scheduler-config.yaml to run with")
    parser.add_argument(
        "--redis-url", help="Redis URL (default: $REDIS_URL, else the config's redis.url or redis.sentinels)"
    )


def run(args: argparse.Namespace) -> int:
    from loguru import logger

    from llmsched.cli.process import COLLECTOR_REDIS_TIMEOUT, run_until_signal, start, watching
    from llmsched.collectors.ha import CollectorHA
    from llmsched.collectors.poller import Poller
    from llmsched.shared import telemetry
    from llmsched.shared.reload import ConfigWatcher
    from llmsched.shared.watchdog import WATCH_INTERVAL_S

    started = start(args, "poller")
    if started is None:
        return 1
    config = started.config
    telemetry.serve("poller", config.telemetry)
    store = started.store(COLLECTOR_REDIS_TIMEOUT)

    async def main(stop) -> None:
        poller = Poller(config, store, duty=CollectorHA("poller", store, started.lease("poller"), WATCH_INTERVAL_S))
        # The poller publishes each config it applies itself (also retrying while Redis is down).
        watcher = ConfigWatcher(args.config, config, on_change=poller.apply_config, process="poller")
        logger.info(
            "poller started: {} pool(s) on BIG-IP {}:{} ({} auth), every {:g} s; Redis {}",
            len(config.pools),
            config.f5.host,
            config.f5.port,
            config.f5.auth,
            config.scheduler.pool_fetch_interval,
            started.redis.describe(),
        )
        async with watching(watcher):
            await poller.run(stop)
        logger.info("poller stopped")

    return run_until_signal(main)
