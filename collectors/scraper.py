"""The engine scraper process: every `metrics_fetch_interval` ms, read each pool's members from Redis (the
poller's membership), GET each member's `/metrics`, and write one metrics document per member back to Redis,
then ask for the pool to be rescored.

* One aiohttp session for the whole process (keep-alive across cycles), a per-request timeout
  (`pools[].metrics.timeout`), at most `scheduler.scrape_concurrency` scrapes in flight.
* Fixed-rate schedule with jitter: cycle k starts near start + k x interval, not interval after the previous
  cycle ended (the original's drift, spec 11.20); a cycle that overruns skips the ticks it missed.
* Every member gets a document under its own id (spec 11.7, 11.17): a failed scrape is recorded as
  `status: error`, so the scoring step stops scoring that member.
* Redis down: logged once, retried every cycle; the process never exits because of it.
* `apply_config(new)` swaps a reloaded config in between cycles.
* High availability (`llmsched.collectors.ha.Duty`, docs/ha.md): with a lease, only its holder scrapes and writes; a
  standby follows the config and starts a cycle at once when it takes the lease over. Each pool's last written
  scrape is kept, so when Redis comes back (empty or not) the holder writes it back at once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import aiohttp
from loguru import logger

from llmsched.collectors.engines import EngineMap, Reading, build_engine_maps, read_engine
from llmsched.collectors.ha import Duty
from llmsched.collectors.scrape_http import Fetcher
from llmsched.collectors.scrape_plan import Target, plan_targets
from llmsched.collectors.telemetry import ScrapeTelemetry
from llmsched.shared.config_model import Config, PoolConfig
from llmsched.shared.errors import ScrapeError, StoreError
from llmsched.shared.jobs import enqueue_scoring
from llmsched.shared.members import Member
from llmsched.shared.publish import publish_config
from llmsched.shared.store import Store
from llmsched.shared.watchdog import rescore_now

JITTER_FRACTION = 0.1  # each cycle starts up to 10% of the interval (at most JITTER_MAX_S) after its tick
JITTER_MAX_S = 1.0
PUBLISHER = "scraper"

MemberKey = tuple[str, str]  # (pool key, member id)


class Scraper:
    def __init__(
        self,
        config: Config,
        store: Store,
        session: aiohttp.ClientSession,
        rng: random.Random | None = None,
        duty: Duty | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.fetcher = Fetcher(session)
        self.rng = rng or random.Random()
        self.maps: dict[str, EngineMap] = build_engine_maps(config.engines_metrics_keys)
        self.semaphore = asyncio.Semaphore(config.scheduler.scrape_concurrency)
        self.published = False
        self.cycles = 0
        self._pending: Config | None = None
        self._was_ok: set[MemberKey] = set()  # members that had all three metrics
        self._last: dict[MemberKey, dict] = {}  # last document written, per member
        self._warned_shared: set[tuple[str, Target]] = set()
        self._redis_down = False
        self.duty = duty or Duty(PUBLISHER, store)
        self._latest: dict[str, tuple[dict[str, dict], list[str]]] = {}  # per pool, last scrape written (restore)
        self._writing = asyncio.Lock()  # a restore never interleaves with a cycle's writes
        self._wake = asyncio.Event()  # set when this process takes the lease over
        self.telemetry = ScrapeTelemetry()

    # --- configuration -----------------------------------------------------------------------------------
    def apply_config(self, new: Config) -> None:
        """Use `new` from the next cycle on (a cycle in progress finishes with the config it started with)."""
        self._pending = new

    def _swap_config(self) -> None:
        new, self._pending = self._pending, None
        if new is None:
            return
        old = self.config
        if new.engines_metrics_keys != old.engines_metrics_keys:
            self.maps = build_engine_maps(new.engines_metrics_keys)
            self._was_ok.clear()  # detection starts over with the new names (as the original)
        changed = {p.key for p in new.pools if (q := old.pool(p.key)) is None or q.engine_type != p.engine_type}
        gone = {p.key for p in old.pools} - {p.key for p in new.pools}
        self._forget(changed | gone)
        self.telemetry.keep_only(p.key for p in new.pools)
        if new.scheduler.scrape_concurrency != old.scheduler.scrape_concurrency:
            self.semaphore = asyncio.Semaphore(new.scheduler.scrape_concurrency)
        self.config = new
        self.duty.set_ttl(new.scheduler.ha_lease_ttl)
        self.published = False  # publish the reloaded routing config at the next cycle
        logger.info("scraper config reloaded from {}", new.source)

    def _forget(self, pool_keys: set[str]) -> None:
        self._was_ok = {k for k in self._was_ok if k[0] not in pool_keys}
        self._last = {k: v for k, v in self._last.items() if k[0] not in pool_keys}
        self._warned_shared = {w for w in self._warned_shared if w[0] not in pool_keys}
        self._latest = {k: v for k, v in self._latest.items() if k not in pool_keys}

    # --- Redis -------------------------------------------------------------------------------------------
    async def _redis(self, fn: Callable, *args):
        """Run a blocking Store call in a thread, so scrapes in flight keep their timing; None on failure."""
        try:
            result = await asyncio.to_thread(fn, *args)
        except StoreError as exc:
            if not self._redis_down:
                logger.warning("Redis unavailable, will retry every cycle: {}", exc)
            self._redis_down = True
            return None
        if self._redis_down:
            logger.info("Redis reachable again")
            self._redis_down = False
        return result

    async def _publish(self) -> None:
        version = await self._redis(publish_config, self.store, self.config, PUBLISHER)
        if version is not None:
            self.published = True
            logger.info("published config {} ({} pools) from {}", version, len(self.config.pools), self.config.source)

    # --- one cycle ---------------------------------------------------------------------------------------
    async def run_cycle(self) -> None:
        self._swap_config()
        if not self.published:
            await self._publish()
        if not self.duty.active:
            return  # a standby: the lease holder scrapes
        config = self.config
        started = time.monotonic()
        await asyncio.gather(*(self.scrape_pool(pool) for pool in config.pools))
        self.telemetry.cycle(time.monotonic() - started)
        self.cycles += 1

    async def scrape_pool(self, pool: PoolConfig) -> dict[str, dict] | None:
        """Scrape every member of one pool, store the documents, enqueue scoring; the documents, or None."""
        membership = await self._redis(self.store.members, pool.key)
        if membership is None:
            logger.debug("pool {}: no membership in Redis yet (poller not run?)", pool.key)
            return None
        members = _members(pool.key, membership.get("members") or [])
        targets = plan_targets(pool.metrics, members)
        self._warn_shared(pool.key, targets)
        readings = await asyncio.gather(*(self._scrape_target(pool, t) for t in targets))
        docs: dict[str, dict] = {}
        for target, doc in zip(targets, readings):
            for mid in target.member_ids:
                docs[mid] = {**doc, "shared_with": [m for m in target.member_ids if m != mid]}
        for mid, doc in docs.items():
            self._note(pool.key, mid, doc)
        self._prune(pool.key, set(docs), targets)
        self.telemetry.pool_scraped(pool.key, docs, self.config.scheduler.effective_stale_after, time.time())
        written = await self._write_metrics(pool.key, docs, [m.id for m in members])
        return docs if written else None

    async def _write_metrics(self, pool_key: str, docs: dict[str, dict], keep: list[str]) -> bool:
        """Write one pool's scrape unless the lease was lost meanwhile; remember it for `restore`."""
        if not self.duty.active:
            return False
        async with self._writing:
            self._latest[pool_key] = (docs, keep)
            return bool(await self._redis(self._write, pool_key, docs, keep))

    async def restore(self, reason: str) -> bool:
        """Redis is back (`reason` "back") or lost its data ("empty"): publish the config again and, as the lease
        holder, write back each pool's last scrape and ask for rescoring. False when Redis failed again."""
        if await self._redis(publish_config, self.store, self.config, PUBLISHER) is None:
            return False
        if not await self.duty.claim():
            return True  # a standby's memory is not the latest: the holder writes its own
        async with self._writing:
            return bool(await self._redis(_write_back, self.store, dict(self._latest)))

    def _on_lease(self, held: bool) -> None:
        if held:
            self._wake.set()  # scrape at once rather than at the next tick

    def _write(self, pool_key: str, docs: dict[str, dict], keep: list[str]) -> bool:
        self.store.set_metrics(pool_key, docs, keep=keep)
        enqueue_scoring(self.store, pool_key, "scrape")
        return True

    async def _scrape_target(self, pool: PoolConfig, target: Target) -> dict:
        keys = [(pool.key, mid) for mid in target.member_ids]
        was_ok = any(k in self._was_ok for k in keys)
        async with self.semaphore:
            started = time.monotonic()
            try:
                text = await self.fetcher.fetch(target.url, pool.metrics)
                reading = read_engine(text, pool.engine_type, self.maps, was_ok)
            except ScrapeError as exc:
                reading = Reading(engine=None, error=str(exc))
            except Exception as exc:  # a bug must cost one member one scrape, not the whole pool's cycle
                logger.opt(exception=exc).error("pool {}: scraping {} failed unexpectedly", pool.key, target.url)
                reading = Reading(engine=None, error=f"internal error: {type(exc).__name__}")
            duration = time.monotonic() - started
        self.telemetry.target_scraped(pool.key, duration, reading.error is None)
        if reading.error is None and reading.detection_status == "ok":
            self._was_ok.update(keys)
        return self._doc(pool, keys[0], reading, duration)

    def _doc(self, pool: PoolConfig, key: MemberKey, reading: Reading, duration: float) -> dict:
        doc = {
            "scraped_at": time.time(),
            "status": "ok" if reading.error is None else "error",
            "error": reading.error,
            **reading.doc_fields(),
            "duration": round(duration, 6),
        }
        if reading.error is not None:
            # Keep what was last known about the engine for status displays; the metrics themselves are gone.
            last = self._last.get(key, {})
            doc["engine"] = (
                doc["engine"] or last.get("engine") or (None if pool.engine_type == "auto" else pool.engine_type)
            )
            doc["detected_variant"] = last.get("detected_variant")
            doc["detection_status"] = "failed"
        return doc

    # --- logging of changes only (one line per transition, not per scrape) --------------------------------
    def _note(self, pool_key: str, mid: str, doc: dict) -> None:
        key = (pool_key, mid)
        last = self._last.get(key)
        self._last[key] = doc
        if doc["status"] == "error":
            if last is None or last["status"] != "error" or last["error"] != doc["error"]:
                logger.warning("pool {} member {}: scrape failed: {}", pool_key, mid, doc["error"])
            return
        if last is not None and last["status"] == "error":
            logger.info("pool {} member {}: scrape ok again", pool_key, mid)
        seen = (doc["engine"], doc["detected_variant"], doc["detection_status"])
        if last is None or seen != (last.get("engine"), last.get("detected_variant"), last.get("detection_status")):
            log = logger.info if doc["detection_status"] == "ok" else logger.warning
            log(
                "pool {} member {}: engine {} variant {} detection {} (found {})",
                pool_key,
                mid,
                doc["engine"],
                doc["detected_variant"],
                doc["detection_status"],
                ", ".join(sorted(doc["metrics"])),
            )

    def _prune(self, pool_key: str, current: set[str], targets: list[Target]) -> None:
        """Forget members that left the pool, so memory follows the pool's size, not its history."""
        self._was_ok = {k for k in self._was_ok if k[0] != pool_key or k[1] in current}
        self._last = {k: v for k, v in self._last.items() if k[0] != pool_key or k[1] in current}
        self._warned_shared = {w for w in self._warned_shared if w[0] != pool_key or w[1] in targets}

    def _warn_shared(self, pool_key: str, targets: list[Target]) -> None:
        for target in targets:
            if target.shared and (pool_key, target) not in self._warned_shared:
                self._warned_shared.add((pool_key, target))
                logger.warning(
                    "pool {}: members {} all map to {} (metrics.port is set and they share an "
                    "address): scraped once, the same metrics stored for each; they cannot be told "
                    "apart",
                    pool_key,
                    ", ".join(target.member_ids),
                    target.url,
                )

    # --- the loop ----------------------------------------------------------------------------------------
    def interval(self) -> float:
        return self.config.scheduler.metrics_fetch_interval / 1000.0

    async def run(self, stop: asyncio.Event) -> None:
        """Run cycles on a fixed-rate, jittered schedule until `stop` is set; a cycle in progress is cancelled.
        The lease (if any) is kept meanwhile and released once no cycle runs any more."""
        done = asyncio.Event()
        duty = asyncio.ensure_future(self.duty.run(done, self.restore, self._on_lease))
        try:
            await self._schedule(stop)
        finally:
            done.set()
            await asyncio.gather(duty, return_exceptions=True)

    async def _schedule(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        tick = loop.time()
        while not stop.is_set():
            started = loop.time()
            if not await self._cycle_or_stop(stop):
                return
            period = self.interval()
            tick += period
            now = loop.time()
            if tick < now:
                missed = int((now - tick) // period) + 1
                logger.warning(
                    "scrape cycle took {:.3f} s, longer than the {:.3f} s interval: {} tick(s) skipped",
                    now - started,
                    period,
                    missed,
                )
                tick += missed * period
            delay = tick + self.rng.uniform(0.0, min(JITTER_FRACTION * period, JITTER_MAX_S)) - now
            self._wake.clear()
            waiting = [asyncio.ensure_future(e.wait()) for e in (stop, self._wake)]
            await asyncio.wait(waiting, timeout=max(0.0, delay), return_when=asyncio.FIRST_COMPLETED)
            for task in waiting:
                task.cancel()
            if self._wake.is_set():
                tick = loop.time()  # took the lease over: this cycle now, the schedule from here

    async def _cycle_or_stop(self, stop: asyncio.Event) -> bool:
        """Run one cycle; False when `stop` was set first (the cycle is then cancelled)."""
        cycle = asyncio.ensure_future(self.run_cycle())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({cycle, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (cycle, stopper):
                if not task.done():
                    task.cancel()
            await asyncio.gather(cycle, stopper, return_exceptions=True)
        if cycle.cancelled():
            return False
        if (exc := cycle.exception()) is not None:  # a bug, not an outage: log it and keep the schedule
            logger.opt(exception=exc).error("scrape cycle failed")
        return not stop.is_set()


def _write_back(store: Store, latest: dict[str, tuple[dict[str, dict], list[str]]]) -> bool:
    for pool_key, (docs, keep) in latest.items():
        store.set_metrics(pool_key, docs, keep=keep)
    rescore_now(store, list(latest))
    return True


def _members(pool_key: str, docs: list) -> list[Member]:
    out = []
    for doc in docs:
        try:
            out.append(Member.from_dict(doc))
        except (TypeError, ValueError, AttributeError):
            logger.warning("pool {}: ignoring a malformed member entry in Redis: {!r}", pool_key, doc)
    return out
