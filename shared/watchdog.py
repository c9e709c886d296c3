"""The Redis watchdog of the collectors and the scorer: notice that Redis came back, or came back empty.

Every `interval` (0.5 s) it asks Redis one cheap question: does the published config's version field exist
(`HEXISTS <ns>:config version`)? Every process that runs with `--config` publishes it, so it is missing only when
Redis lost its data (restarted without persistence, flushed, a failover to an empty replica). Then, and also when
Redis answers again after being unreachable, the process's `restore` runs: it writes back what the process last
wrote (the routing config, the membership, the last scrapes) from memory and asks for rescoring, so decisions
work again within about a second of Redis returning, without waiting for the next BIG-IP poll or scrape.

`restore` returns False when it could not finish (Redis failed again): the next tick tries again.

Every `CHECK_EVERY_S` the same loop measures this host's clock against Redis's (shared/clock.py), exports it and
warns when it is too far off for `stale_after` (the default 3 s unless the process passes its own).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

import redis
from loguru import logger

from llmsched.shared.clock import CHECK_EVERY_S, SkewMonitor
from llmsched.shared.config_model import SchedulerConfig
from llmsched.shared.errors import StoreError
from llmsched.shared.scoring_queue import clear_pending, enqueue_scoring
from llmsched.shared.store import Store

WATCH_INTERVAL_S = 0.5
RESTORE_REASON = "recovery"  # the scoring-job reason of rescores asked for by a restore
# Processes that do not pass their own stale_after judge skew against the smallest default (it warns earliest).
DEFAULT_STALE_AFTER_S = SchedulerConfig().effective_stale_after


def rescore_now(store: Store, pool_keys: list[str]) -> None:
    """Enqueue a rescore of each pool, dropping its pending flag first: the flag may be left over from a job
    whose enqueue was lost with Redis (SET NX applied, enqueue not), and would block rescoring for its TTL."""
    for pool_key in pool_keys:
        try:
            clear_pending(store, pool_key)
        except redis.RedisError as exc:
            raise StoreError(f"redis: {type(exc).__name__}: {exc}") from exc
        enqueue_scoring(store, pool_key, RESTORE_REASON)


class RedisWatchdog:
    def __init__(
        self,
        store: Store,
        process: str,
        interval: float = WATCH_INTERVAL_S,
        stale_after: Callable[[], float] = lambda: DEFAULT_STALE_AFTER_S,
    ) -> None:
        self.store = store
        self.process = process
        self.interval = interval
        self.skew = SkewMonitor(process, stale_after)
        self._skew_due = 0.0
        self._down = False
        self._retrying = False  # the last restore failed: the next one is the same episode, not logged again
        self.restores = 0

    def probe(self) -> str | None:
        """Why a restore is due now: "empty" (no published config), "back" (reachable again), or None."""
        if (now := time.monotonic()) >= self._skew_due:
            self._skew_due = now + CHECK_EVERY_S
            self.skew.check(self.store.client)
        try:
            present = self.store.has_config()
        except StoreError:
            self._down = True  # the process's own Redis calls log the outage; this one stays quiet
            return None
        was_down, self._down = self._down, False
        if not present:
            return "empty"
        return "back" if was_down else None

    def _announce(self, reason: str) -> None:
        self.restores += 1
        if self._retrying:
            return
        if reason == "empty":
            logger.warning(
                "{}: Redis has no published config (restarted empty or flushed): writing back what "
                "this process last wrote",
                self.process,
            )
        else:
            logger.info("{}: Redis reachable again: writing back what this process last wrote", self.process)

    def _done(self, ok: bool) -> None:
        self._retrying = not ok
        if not ok:
            self._down = True  # try again at the next tick

    async def run_async(self, stop: asyncio.Event, restore: Callable[[str], Awaitable[bool]]) -> None:
        """Probe every `interval` s until `stop` is set; await `restore(reason)` when one is due."""
        while True:
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
                return
            except TimeoutError:
                pass
            try:
                reason = await asyncio.to_thread(self.probe)
                if reason is not None:
                    self._announce(reason)
                    self._done(await restore(reason))
            except Exception:  # a watchdog that dies silently would leave Redis empty for good
                logger.exception("{}: Redis watchdog failed; it keeps watching", self.process)

    def run_until(self, stop: threading.Event, restore: Callable[[str], bool]) -> None:
        """The same in a thread: probe every `interval` s until `stop` is set."""
        while not stop.wait(self.interval):
            try:
                reason = self.probe()
                if reason is not None:
                    self._announce(reason)
                    self._done(restore(reason))
            except Exception:  # a watchdog that dies silently would leave Redis empty for good
                logger.exception("{}: Redis watchdog failed; it keeps watching", self.process)
