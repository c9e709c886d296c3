"""High availability of a collector process (poller, scraper): its role's lease and its Redis watchdog.

Several pollers and several scrapers may run; each role has one lease in Redis (`llmsched.shared.lease`) and only its
holder works (polls BIG-IP, scrapes engines, writes). The others stand by and take over within about 4 s when
the holder dies. A collector asks `duty.active` before each piece of work and before each write, so a holder that
loses its lease stops at once.

The watchdog (shared/watchdog.py) notices Redis coming back, or coming back empty; the collector's `restore` then
writes back from memory what it last wrote, if it holds the lease (a standby's memory is not the latest).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import redis

from llmsched.shared.lease import Lease, keep
from llmsched.shared.store import Store
from llmsched.shared.watchdog import RedisWatchdog


class Duty:
    """The lease (None: this process always works) and the watchdog (None: no watching) of one collector."""

    def __init__(
        self, role: str, store: Store, lease: Lease | None = None, watch_interval: float | None = None
    ) -> None:
        self.role = role
        self.lease = lease
        self.watchdog = RedisWatchdog(store, role, watch_interval) if watch_interval else None

    @property
    def active(self) -> bool:
        """Whether this process may work and write now (no Redis call)."""
        return self.lease is None or self.lease.held

    async def claim(self) -> bool:
        """Renew or take the lease right now (Redis just came back): whether this process may work."""
        if self.lease is None:
            return True
        try:
            await asyncio.to_thread(self.lease.refresh)
        except redis.RedisError:
            pass
        return self.lease.held

    def set_ttl(self, ttl: float) -> None:
        if self.lease is not None:
            self.lease.ttl = ttl

    async def run(
        self, done: asyncio.Event, restore: Callable[[str], Awaitable[bool]], on_change: Callable[[bool], None]
    ) -> None:
        """Keep the lease and watch Redis until `done` is set; then release the lease."""
        jobs = []
        if self.lease is not None:
            jobs.append(keep(self.lease, self.role, done, on_change))
        if self.watchdog is not None:
            jobs.append(self.watchdog.run_async(done, restore))
        await asyncio.gather(*jobs)
