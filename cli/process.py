"""Start-up shared by the long-running commands (poller, scraper, scorer, api, up).

Each loads its config with every error named by file and key path, finds Redis (the `--redis-url` flag, else the
config: `redis.url`, which `REDIS_URL` overrides, or `redis.sentinels` + `redis.master_name`), sets up logging and
builds its clients here, so they all find Redis the same way. The asyncio collectors also share how SIGTERM/SIGINT
stop them, how their config watcher runs beside them, and their role's lease.

Imported by the subcommands inside `run()` only: it pulls in the config loader and redis-py.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from loguru import logger

from llmsched.shared.config import load_config
from llmsched.shared.config_model import Config
from llmsched.shared.errors import ConfigError
from llmsched.shared.keys import Keys
from llmsched.shared.lease import Lease
from llmsched.shared.logging import setup_logging
from llmsched.shared.redis_conn import RedisTarget, client_for, target_from_config
from llmsched.shared.reload import ConfigWatcher
from llmsched.shared.store import Store

COLLECTOR_REDIS_TIMEOUT = 2.0  # s; the collectors are off the request path, so they may wait longer than a decision
LEASE_REDIS_TIMEOUT_MAX = 1.0  # s; a lease call never waits longer than a third of the lease's TTL, nor this


def load(path: str) -> Config | None:
    """The config at `path`, or None after printing each problem as `path: key: message` on stderr."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for key, messages in sorted(exc.errors.items()):
            for message in messages:
                print(f"{path}: {key}: {message}", file=sys.stderr)
        return None


@dataclass(frozen=True)
class Started:
    """A process's loaded config and where its Redis is."""

    path: str
    config: Config
    redis: RedisTarget

    def store(self, socket_timeout: float) -> Store:
        timeout = max(self.config.redis.socket_timeout, socket_timeout)
        return Store(client_for(self.redis, socket_timeout=timeout), self.config.redis.namespace)

    def lease(self, role: str) -> Lease:
        """The lease of `role`, on a client of its own whose timeout fits within the lease's TTL."""
        ttl = self.config.scheduler.ha_lease_ttl
        client = client_for(self.redis, socket_timeout=min(LEASE_REDIS_TIMEOUT_MAX, ttl / 3))
        return Lease(client, Keys(self.config.redis.namespace).lease(role), ttl)


def start(args: argparse.Namespace, process: str) -> Started | None:
    """Load `args.config`, find Redis, set up logging and log the config's warnings; None (reported) on error."""
    config = load(args.config)
    if config is None:
        return None
    target = target_from_config(config.redis, getattr(args, "redis_url", None))
    if not target:
        print(
            f"{args.config}: redis.url: not set (set redis.url, $REDIS_URL or --redis-url, or redis.sentinels "
            "and redis.master_name)",
            file=sys.stderr,
        )
        return None
    setup_logging(process, config.global_.log_level, config.global_.log_format)
    for warning in config.warnings:
        logger.warning("config: {}", warning)
    return Started(args.config, config, target)


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> int:
    """Run `main(stop)` on a new event loop; SIGTERM and SIGINT set `stop`. Exit code 0."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())
    return 0


@asynccontextmanager
async def watching(watcher: ConfigWatcher) -> AsyncIterator[ConfigWatcher]:
    """Run the config watcher beside the body; it stops with it."""
    task = asyncio.create_task(watcher.run_async())
    try:
        yield watcher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
