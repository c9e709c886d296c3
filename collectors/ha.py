"""High availability of a collector process (poller, scraper): its role's lease or shard membership, and its Redis
watchdog.

Several pollers may run; the role has one lease in Redis (`llmsched.shared.lease`) and only its holder works (polls
BIG-IP, writes). The others stand by and take over within about 4 s when the holder dies. Several scrapers share
the work instead (`llmsched.collectors.shards`): each live member scrapes its own share of the pool members. A
collector asks `duty.active` before each piece of work and before each write, so a holder that loses its lease, or
a scraper whose membership ran out, stops at once.

The watchdog (shared/watchdog.py) notices Redis coming back, or coming back empty; the collector's `restore` then
writes back from memory what it last wrote, if it holds the lease (a standby's memory is not the latest).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import redis

from llmsched.collectors import shards as shard_keeping
from llmsched.collectors.shards import Shards
from llmsched.shared.lease import Lease, keep
from llmsched.shared.store import Store
from llmsched.shared.watchdog import RedisWatchdog


class CollectorHA:
    """The lease or the shard membership (neither: this process always works, alone) and the watchdog (None: no
    watching) of one collector."""

    def __init__(
        self,
        role: str,
        store: Store,
        lease: Lease | None = None,
        watch_interval: float | None = None,
        shards: Shards | None = None,
    ) -> None:
        self.role = role
        self.lease = lease
        self.shards = shards
        self.watchdog = RedisWatchdog(store, role, watch_interval) if watch_interval else None

    @property
    def active(self) -> bool:
        """Whether this process may work and write now (no Redis call)."""
        if self.shards is not None:
            return self.shards.held
        return self.lease is None or self.lease.held

    async def claim(self) -> bool:
        """Renew or take the lease (or membership) right now (Redis just came back): whether this process may work."""
        renew = self.shards.renew if self.shards is not None else self.lease.refresh if self.lease else None
        if renew is None:
            return True
        try:
            await asyncio.to_thread(renew)
        except redis.RedisError:
            pass
        return self.active

    def set_ttl(self, ttl: float) -> None:
        if self.lease is not None:
            self.lease.ttl = ttl
        if self.shards is not None:
            self.shards.ttl = ttl

    async def run(
        self, done: asyncio.Event, restore: Callable[[str], Awaitable[bool]], on_change: Callable[[bool], None]
    ) -> None:
        """Keep the lease (or membership) and watch Redis until `done` is set; then release it."""
        jobs = []
        if self.lease is not None:
            jobs.append(keep(self.lease, self.role, done, on_change))
        if self.shards is not None:
            jobs.append(shard_keeping.keep(self.shards, self.role, done, on_change))
        if self.watchdog is not None:
            jobs.append(self.watchdog.run_async(done, restore))
        await asyncio.gather(*jobs)
