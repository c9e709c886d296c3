"""Leases in Redis: which one of several identical collectors (poller, scraper) does the work.

One key per role (`Keys.lease(role)`) holds the holder's id (`host:pid:random`) with a TTL (`ha_lease_ttl`,
default 3 s). Acquiring is `SET NX PX`; the holder renews every third of the TTL with a compare-and-pexpire
script and releases on a clean shutdown with a compare-and-delete script, so nobody ever extends or deletes a
lease it does not hold. Standbys try to acquire at the same pace, so after a kill -9 of the holder another
process works again within TTL + TTL/3 (about 4 s).

The holder also keeps its own deadline: the moment it *sent* its last successful renewal plus the TTL, on the
local monotonic clock. Redis started counting the TTL no earlier than that, so the local deadline passes first:
a holder whose renewals stall (a long pause, Redis unreachable, a failover that lost the key) stops working
before anyone else can acquire the lease. `held` is that check and costs no Redis call.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable

import redis
from loguru import logger

# KEYS[1] lease; ARGV[1] holder id, ARGV[2] TTL in ms: extend the lease only if we hold it.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# KEYS[1] lease; ARGV[1] holder id: delete the lease only if we hold it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def holder_id() -> str:
    """`host:pid:random`: unique per process start, readable in redis-cli."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Holding:
    """What a lease holder and a shard member (collectors/shards.py) share: an id, a key with a TTL, and the holder's
    own deadline (the moment it sent its last successful renewal plus the TTL, on the local monotonic clock)."""

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        ttl: float,
        holder: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,  # the wall clock, for a holder that aligns on Redis's time
    ) -> None:
        self.client = client
        self.key = key
        self.ttl = ttl
        self.holder = holder or holder_id()
        self._clock = clock
        self._wall = wall
        self._valid_until = 0.0
        self._scripts(client)

    def _scripts(self, client: redis.Redis) -> None:
        """Register the subclass's Lua scripts (and set up its state)."""

    @property
    def held(self) -> bool:
        """True while this process holds its place by its own clock (no Redis call)."""
        return self._clock() < self._valid_until

    @property
    def interval(self) -> float:
        """Seconds between renewals (and between a standby's attempts)."""
        return self.ttl / 3

    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))


class Lease(Holding):
    """One process's view of one role's lease. Methods are blocking; call them off the event loop."""

    def _scripts(self, client: redis.Redis) -> None:
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        # The keeper and the Redis watchdog's claim refresh from two threads: one step at a time, or a renewal that
        # failed (the key was flushed) could clear the deadline the other had just set by taking the key again, and
        # the holder would flap to standby and back (a collector woken to work twice in one interval).
        self._refreshing = threading.Lock()

    def acquire(self) -> bool:
        """Take the lease if nobody holds it."""
        sent = self._clock()
        if self.client.set(self.key, self.holder, nx=True, px=self._ttl_ms()):
            self._valid_until = sent + self.ttl
            return True
        return False

    def renew(self) -> bool:
        """Extend the lease if we still hold it in Redis; False (and not held) otherwise."""
        sent = self._clock()
        if self._renew(keys=[self.key], args=[self.holder, self._ttl_ms()]):
            self._valid_until = sent + self.ttl
            return True
        self._valid_until = 0.0
        return False

    def refresh(self) -> bool:
        """One step of keeping the lease: renew it when held, else (or when the key vanished) try to acquire it.

        Redis errors propagate; the local deadline keeps running meanwhile, so an unreachable Redis ends the
        holding within one TTL without any call succeeding.
        """
        with self._refreshing:
            if self._valid_until and self.renew():
                return True
            return self.acquire()

    def release(self) -> bool:
        """Give the lease up (only if we hold it), so a standby takes over at its next attempt."""
        self._valid_until = 0.0
        return bool(self._release(keys=[self.key], args=[self.holder]))

    def owner(self) -> str | None:
        raw = self.client.get(self.key)
        return raw.decode() if raw else None


async def keep(lease: Lease, role: str, stop: asyncio.Event, on_change: Callable[[bool], None]) -> None:
    """Renew or try to acquire `lease` every `lease.interval` s until `stop`; report each change of holding.

    `on_change(True)` when this process starts holding, `on_change(False)` when it stops; each change is logged
    once. The lease is released when `stop` is set.
    """
    holding = announced = False
    unreachable: str | None = None
    while not stop.is_set():
        try:
            await asyncio.to_thread(lease.refresh)
            if unreachable is not None:
                logger.info("{} lease: Redis reachable again", role)
            unreachable = None
        except redis.RedisError as exc:
            if unreachable is None:
                logger.warning(
                    "{} lease: Redis unreachable ({}: {}); {}",
                    role,
                    type(exc).__name__,
                    exc,
                    "working until the lease runs out" if lease.held else "not working",
                )
            unreachable = str(exc)
        if lease.held != holding:
            holding = lease.held
            if holding:
                logger.info("{} lease acquired by {}: this process works now", role, lease.holder)
            else:
                owner = await _owner(lease)
                logger.warning(
                    "{} lease lost{}: this process stops working and stands by", role, f" to {owner}" if owner else ""
                )
            announced = True
            on_change(holding)
        elif not holding and not announced and unreachable is None:
            announced = True
            owner = await _owner(lease)
            logger.info(
                "{} lease held by {}: standing by, trying every {:g} s", role, owner or "nobody", lease.interval
            )
        try:
            await asyncio.wait_for(stop.wait(), timeout=lease.interval)
        except TimeoutError:
            pass
    if lease.held:
        try:
            await asyncio.to_thread(lease.release)
            logger.info("{} lease released", role)
        except redis.RedisError as exc:
            logger.warning("{} lease not released ({}); it expires within {:g} s", role, exc, lease.ttl)


async def _owner(lease: Lease) -> str | None:
    try:
        return await asyncio.to_thread(lease.owner)
    except redis.RedisError:
        return None
