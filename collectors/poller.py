"""The BIG-IP poller process: reads every configured pool's members and writes them to Redis.

Every `scheduler.pool_fetch_interval` seconds (the first time immediately at start) it fetches all pools
concurrently and writes each pool's membership document. When a pool's membership or any member's status
changes, it enqueues a scoring job, so decisions follow BIG-IP within one poll interval (a member disabled on
BIG-IP stops being picked even while the iRule still offers it). Failures never drop a pool: see
`llmsched.collectors.f5_membership`. Redis being down is logged and retried next cycle; the process never exits for it.

A new `Config` is swapped in between cycles with `apply_config` (`llmsched.shared.reload.ConfigWatcher` calls it on the
event loop); a changed `f5` section replaces the BIG-IP client (the old token is deleted); pools and intervals
take effect at once (the loop wakes up and runs a cycle with them); `redis.*` needs a restart.

High availability (`llmsched.collectors.ha.CollectorHA`, docs/ha.md): with a lease, only its holder polls BIG-IP and
writes; a standby only follows the config and polls at once when it takes the lease over. The membership last meant
for Redis is kept per pool, so when Redis comes back (empty or not) the holder writes it back at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from loguru import logger

from llmsched.collectors.f5_client import F5Client
from llmsched.collectors.f5_members import ParsedMembers
from llmsched.collectors.f5_membership import (
    PoolState,
    describe_error,
    failure_doc,
    membership_changes,
    status_counts,
    success_doc,
)
from llmsched.collectors.ha import CollectorHA
from llmsched.collectors.telemetry import PollTelemetry
from llmsched.shared.config_model import Config, PoolConfig
from llmsched.shared.errors import F5Error, StoreError
from llmsched.shared.logging import setup_logging
from llmsched.shared.publish import publish_config
from llmsched.shared.scoring_queue import enqueue_scoring
from llmsched.shared.store import Store
from llmsched.shared.watchdog import rescore_now

PUBLISHER = "poller"
STOP_GRACE = 2.0  # s a cycle may still run after SIGTERM before it is cancelled (exit within 5 s)

ClientFactory = Callable[[Config], F5Client]


def default_client(config: Config) -> F5Client:
    return F5Client(config.f5)


class Poller:
    def __init__(
        self,
        config: Config,
        store: Store,
        client_factory: ClientFactory = default_client,
        clock: Callable[[], float] = time.time,
        duty: CollectorHA | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self._client_factory = client_factory
        self._clock = clock
        self.client = client_factory(config)
        self.pools: dict[str, PoolState] = {}
        self._pending: Config | None = None
        self._wake = asyncio.Event()
        self._publish_due = True
        self._redis_error: str | None = None
        self.cycles = 0
        self.duty = duty or CollectorHA(PUBLISHER, store)
        self._latest: dict[str, dict] = {}  # per pool, the membership doc last meant for Redis (restore)
        self._writing = asyncio.Lock()  # a restore never interleaves with a cycle's writes
        self.telemetry = PollTelemetry()

    # --- configuration ------------------------------------------------------------------------------------
    def apply_config(self, new: Config) -> None:
        """Use `new` from the next cycle on (call from the event loop's thread); the waiting loop wakes up."""
        self._pending = new
        self._wake.set()

    async def _swap_config(self) -> None:
        new, self._pending = self._pending, None
        if new is None:
            return
        old, self.config = self.config, new
        if new.f5 != old.f5:
            logger.info("f5 settings changed: new BIG-IP client for {}:{}", new.f5.host, new.f5.port)
            retired, self.client = self.client, self._client_factory(new)
            await retired.close()
        if (new.global_.log_level, new.global_.log_format) != (old.global_.log_level, old.global_.log_format):
            setup_logging(PUBLISHER, new.global_.log_level, new.global_.log_format)
        keys = {p.key for p in new.pools}
        gone = [k for k in self.pools if k not in keys]
        for key in gone:
            del self.pools[key]
            self._latest.pop(key, None)
        self.duty.set_ttl(new.scheduler.ha_lease_ttl)
        self.telemetry.keep_only(keys)
        logger.info(
            "poller now uses the config from {}: {} pool(s), fetch every {:g} s",
            new.source,
            len(new.pools),
            new.scheduler.pool_fetch_interval,
        )
        self._publish_due = True

    # --- one cycle ----------------------------------------------------------------------------------------
    async def poll_once(self) -> dict[str, str | None]:
        """Fetch every pool once and write the results; returns pool key -> error (None when read fine)."""
        started = time.monotonic()
        await self._swap_config()
        self.cycles += 1
        if self._publish_due:
            self._publish_due = not await self._redis(
                "publish the config", publish_config, self.store, self.config, PUBLISHER
            )
        if not self.duty.active:
            return {}  # a standby: the lease holder polls BIG-IP
        pools = list(self.config.pools)
        client = self.client
        try:
            await client.authenticate()
            results: list[Any] = await asyncio.gather(
                *(client.pool_members(p.name, p.partition) for p in pools), return_exceptions=True
            )
        except Exception as exc:  # credentials refused or BIG-IP unreachable: every pool shares the failure
            results = [exc] * len(pools)
        outcome: dict[str, str | None] = {}
        for pool, result in zip(pools, results):
            if isinstance(result, asyncio.CancelledError):
                raise result
            outcome[pool.key] = await self._record(pool, result)
        self.telemetry.cycle(time.monotonic() - started)
        return outcome

    async def _record(self, pool: PoolConfig, result: ParsedMembers | BaseException) -> str | None:
        state = self.pools.setdefault(pool.key, PoolState())
        now = self._clock()
        if isinstance(result, BaseException):
            self.telemetry.pool_failed(pool.key, result)
        else:
            self.telemetry.pool_read(pool.key, (m.status for m in result.members), now)
        if not state.loaded and not await self._redis("read the last membership", self._load, pool.key, state):
            return describe_error(result, pool) if isinstance(result, BaseException) else None
        if isinstance(result, BaseException):
            error = describe_error(result, pool)
            if not isinstance(result, F5Error):
                logger.opt(exception=result).error("pool {}: unexpected failure", pool.key)
            if await self._write_members(pool.key, failure_doc(state, error, now)):
                self._note_failure(pool, state, error, result, now)
            return error
        self._note_skipped(pool, state, result)
        members = [m.to_dict() for m in result.members]
        changes = membership_changes(state.members, members)
        if not await self._write_members(pool.key, success_doc(members, now)):
            return None
        first, state.announced = not state.announced, True
        if state.logged_error is not None:
            logger.info(
                "pool {}: BIG-IP read again after {} failed poll(s) over {:.0f} s",
                pool.key,
                state.failures,
                now - (state.failing_since or now),
            )
        state.members, state.fetched_at, state.error, state.logged_error = members, now, None, None
        state.failures, state.failing_since = 0, None
        if first or changes:
            what = status_counts(members) if first else "; ".join(changes)
            logger.info("pool {}: {} member(s): {}", pool.key, len(members), what)
        if changes:
            await self._redis("enqueue a scoring job", enqueue_scoring, self.store, pool.key, "membership")
        return None

    async def _write_members(self, pool_key: str, doc: dict) -> bool:
        """Write one pool's membership unless the lease was lost meanwhile; remember it for `restore`."""
        if not self.duty.active:
            return False
        async with self._writing:
            self._latest[pool_key] = doc
            return await self._redis("write the membership", self.store.set_members, pool_key, doc)

    async def restore(self, reason: str) -> bool:
        """Redis is back (`reason` "back") or lost its data ("empty"): publish the config again and, as the lease
        holder, write back the last memberships and ask for rescoring. False when Redis failed again."""
        if not await self._redis("publish the config", publish_config, self.store, self.config, PUBLISHER):
            return False
        if not await self.duty.claim():
            return True  # a standby's memory is not the latest: the holder writes its own
        async with self._writing:
            return await self._redis("write back the memberships", _write_back, self.store, dict(self._latest))

    def _on_lease(self, held: bool) -> None:
        if held:
            self._wake.set()  # poll at once: the previous holder may have died long before its next poll

    def _load(self, pool_key: str, state: PoolState) -> None:
        state.adopt(self.store.members(pool_key))

    def _note_failure(self, pool: PoolConfig, state: PoolState, error: str, exc: BaseException, now: float) -> None:
        state.failures += 1
        if state.failing_since is None:
            state.failing_since = now
        if error != state.logged_error:  # once per change of state, not every cycle
            age = f"{now - state.fetched_at:.0f} s old" if state.fetched_at else "never read"
            status = getattr(exc, "status", None)
            logger.warning(
                "pool {}: {}{}; keeping the last known membership ({} member(s), {})",
                pool.key,
                error,
                f" [HTTP {status}]" if status and f"HTTP {status}" not in error else "",
                len(state.members),
                age,
            )
        state.error = state.logged_error = error

    def _note_skipped(self, pool: PoolConfig, state: PoolState, parsed: ParsedMembers) -> None:
        note = "; ".join(parsed.skipped) or None
        if note and note != state.skipped_note:
            logger.warning("pool {}: ignoring member item(s) BIG-IP sent: {}", pool.key, note)
        state.skipped_note = note

    async def _redis(self, what: str, fn: Callable[..., Any], *args: Any) -> bool:
        """Run a blocking Redis operation off the event loop; False (logged once per outage) when Redis fails."""
        try:
            await asyncio.to_thread(fn, *args)
        except StoreError as exc:
            if self._redis_error is None:
                logger.error("Redis unavailable (could not {}): {}; retrying every cycle", what, exc)
            self._redis_error = str(exc)
            return False
        if self._redis_error is not None:
            logger.info("Redis reachable again")
            self._redis_error = None
        return True

    # --- the loop -----------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set; then let the cycle finish (at most STOP_GRACE s) and delete the token."""
        loop = asyncio.get_running_loop()
        stopping = asyncio.ensure_future(stop.wait())
        done = asyncio.Event()
        duty = asyncio.ensure_future(self.duty.run(done, self.restore, self._on_lease))
        try:
            while not stop.is_set():
                started = loop.time()
                self._wake.clear()  # a reload arriving from here on is applied by the cycle after this one
                cycle = asyncio.ensure_future(self.poll_once())
                await asyncio.wait({cycle, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not cycle.done():
                    await asyncio.wait({cycle}, timeout=STOP_GRACE)
                    if not cycle.done():
                        logger.info("stopping: abandoning the poll cycle in progress")
                        cycle.cancel()
                        await asyncio.gather(cycle, return_exceptions=True)
                        break
                if not cycle.cancelled() and cycle.exception() is not None:
                    logger.opt(exception=cycle.exception()).error("poll cycle failed")
                delay = self.config.scheduler.pool_fetch_interval - (loop.time() - started)
                if delay > 0 and not stop.is_set() and not self._wake.is_set():
                    waker = asyncio.ensure_future(self._wake.wait())
                    await asyncio.wait({stopping, waker}, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
                    waker.cancel()
        finally:
            stopping.cancel()
            done.set()  # the lease is released only now that this process polls no more
            await asyncio.gather(duty, self.close(), return_exceptions=True)

    async def close(self) -> None:
        await self.client.close()


def _write_back(store: Store, docs: dict[str, dict]) -> None:
    for pool_key, doc in docs.items():
        store.set_members(pool_key, doc)
    rescore_now(store, list(docs))
