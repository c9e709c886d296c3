"""The engine scraper process: every `metrics_fetch_interval` ms, read each pool's members from Redis (the
poller's membership), GET each member's `/metrics`, and write one metrics document per member back to Redis,
then ask for the pool to be rescored.

* Keep-alive connections across cycles (plain HTTP: collectors/http1.py; https: one aiohttp session for the
  whole process), a per-request timeout
  (`pools[].metrics.timeout`), at most `scheduler.scrape_concurrency` scrapes in flight (collectors/bounded.py).
* Fixed-rate schedule with jitter: tick k is at k x interval on the (Redis) clock, the same instants for every
  scraper, not interval after the previous cycle ended (the original's drift); a cycle that runs into
  the next tick's window starts the next one at once, late; ticks whose whole window passed are skipped.
* Every member gets a document under its own id: a failed scrape is recorded as
  `status: error`, so the scoring step stops scoring that member.
* Redis down: logged once, retried every cycle; the process never exits because of it.
* `apply_config(new)` swaps a reloaded config in between cycles.
* Sharding and high availability (`llmsched.collectors.ha.CollectorHA`, `collectors/shards.py`, docs/ha.md): every live
  scraper scrapes the targets it owns at each tick and writes only their documents; a dead scraper's targets go
  to the others once its membership expires. Each pool's last written scrape is kept, so when Redis comes back
  (empty or not) each scraper writes its own share back at once.
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
import time
from collections.abc import Callable

import aiohttp
from loguru import logger

from llmsched.collectors.bounded import Bounded
from llmsched.collectors.engines import EngineMap, Reading, build_engine_maps, read_engine
from llmsched.collectors.ha import CollectorHA
from llmsched.collectors.scrape_http import Fetcher
from llmsched.collectors.scrape_plan import Target, plan_targets
from llmsched.collectors.telemetry import ScrapeTelemetry
from llmsched.shared import scrape_stats
from llmsched.shared.config_model import Config, MetricsConfig, PoolConfig
from llmsched.shared.errors import ScrapeError, StoreError
from llmsched.shared.members import Member
from llmsched.shared.publish import publish_config
from llmsched.shared.scoring_queue import enqueue_scoring
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
        duty: CollectorHA | None = None,
        telemetry: ScrapeTelemetry | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.fetcher = Fetcher(session)
        self.rng = rng or random.Random()
        self.maps: dict[str, EngineMap] = build_engine_maps(config.engines_metrics_keys)
        self.bounded = Bounded(config.scheduler.scrape_concurrency)  # scrapes in flight, across all pools
        self.published = False
        self.cycles = 0
        self._pending: Config | None = None
        # Per pool, so that forgetting one pool's leavers costs that pool's size, not every pool's.
        self._was_ok: dict[str, set[str]] = {}  # pool -> members that had all three metrics
        self._last: dict[str, dict[str, dict]] = {}  # pool -> member -> last document written
        self._plans: dict[str, tuple[MetricsConfig, list, list[Member], list[Target]]] = {}  # pool -> plan (_plan)
        self._warned_shared: set[tuple[str, Target]] = set()
        self._redis_down = False
        self.duty = duty or CollectorHA(PUBLISHER, store)
        self._latest: dict[str, tuple[dict[str, dict], list[str]]] = {}  # per pool, last scrape written (restore)
        self._writing = asyncio.Lock()  # a restore never interleaves with a cycle's writes
        self._wake = asyncio.Event()  # set when this process takes the lease over
        self.telemetry = telemetry or ScrapeTelemetry()
        self.cycle_stats = [0, 0]  # members and targets scraped in the cycle in progress
        self.skipped_ticks = 0

    def close(self) -> None:
        """Close the plain-HTTP engine connections (the aiohttp session is the caller's)."""
        self.fetcher.close()

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
        self.bounded.limit = new.scheduler.scrape_concurrency
        self.config = new
        self.duty.set_ttl(new.scheduler.ha_lease_ttl)
        self.published = False  # publish the reloaded routing config at the next cycle
        logger.info("scraper config reloaded from {}", new.source)

    def _forget(self, pool_keys: set[str]) -> None:
        for pool_key in pool_keys:
            self._was_ok.pop(pool_key, None)
            self._last.pop(pool_key, None)
            self._plans.pop(pool_key, None)
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
    def now(self) -> float:
        """The clock ticks are aligned on: Redis's (estimated) when sharing the work, else this host's."""
        shards = self.duty.shards
        return shards.now() if shards is not None else time.time()

    async def run_cycle(self, at: float | None = None) -> int:
        """One cycle for the tick at time `at` (default: now); the number of targets scraped."""
        self._swap_config()
        if not self.published:
            await self._publish()
        if not self.duty.active:
            return 0  # not a live shard member (or not the lease holder): nothing is ours
        at = self.now() if at is None else at
        self.cycle_stats = [0, 0]  # members, targets
        # Every pool's membership first, then the scrapes in pool order: each member then sits at about the same
        # place in every cycle, so its scrapes come about one interval apart (queued in the order the reads
        # happened to return, a member's place, and so its data's age, moved by up to a whole cycle).
        pools = self.config.pools
        memberships = await asyncio.gather(*(self._redis(self.store.members, pool.key) for pool in pools))
        await asyncio.gather(*(self.scrape_pool(pool, at, m) for pool, m in zip(pools, memberships)))
        self.cycles += 1
        return self.cycle_stats[1]

    def _plan(self, pool: PoolConfig, raw: list) -> tuple[list[Member], list[Target]]:
        """The pool's members and targets; parsed again only when the membership or metrics settings changed
        (the poller rewrites an unchanged membership every poll: comparing it is cheaper than parsing it)."""
        cached = self._plans.get(pool.key)
        if cached is not None and cached[0] is pool.metrics and cached[1] == raw:
            return cached[2], cached[3]
        members = _members(pool.key, raw)
        planned = plan_targets(pool.metrics, members)
        self._plans[pool.key] = (pool.metrics, raw, members, planned)
        return members, planned

    def _owned(self, pool_key: str, targets: list[Target], at: float) -> list[Target]:
        shards = self.duty.shards
        if shards is None:
            return targets
        mine = shards.mine((f"{pool_key} {t.url}" for t in targets), at)
        return [t for t in targets if f"{pool_key} {t.url}" in mine]

    async def scrape_pool(
        self, pool: PoolConfig, at: float | None = None, membership: dict | None | bool = False
    ) -> dict[str, dict] | None:
        """Scrape the members of one pool this scraper owns at the tick `at`, store their documents, enqueue
        scoring; the documents, or None. `membership`: the pool's membership as read for this cycle (None: none in
        Redis), read here when not given."""
        if membership is False:
            membership = await self._redis(self.store.members, pool.key)
        if not isinstance(membership, dict):
            logger.debug("pool {}: no membership in Redis yet (poller not run?)", pool.key)
            return None
        members, planned = self._plan(pool, membership.get("members") or [])
        targets = self._owned(pool.key, planned, self.now() if at is None else at)
        self.cycle_stats[0] += sum(len(t.member_ids) for t in targets)
        self.cycle_stats[1] += len(targets)
        self._warn_shared(pool.key, targets)
        readings = await self.bounded.map(functools.partial(self._scrape_target, pool), targets)
        docs: dict[str, dict] = {}
        for target, doc in zip(targets, readings):
            for mid in target.member_ids:
                docs[mid] = {**doc, "shared_with": [m for m in target.member_ids if m != mid]}
        for mid, doc in docs.items():
            self._note(pool.key, mid, doc)
        self._prune(pool.key, set(docs), targets)
        self.telemetry.pool_scraped(pool.key, docs, self.config.scheduler.effective_stale_after, time.time())
        if not docs and members:
            return docs  # nothing of this pool is ours: its owners write (and drop the documents of leavers)
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
        had_all = self._was_ok.get(pool.key, ())
        was_ok = any(mid in had_all for mid in target.member_ids)
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
            self._was_ok.setdefault(pool.key, set()).update(target.member_ids)
        return self._doc(pool, (pool.key, target.member_ids[0]), reading, duration)

    def _doc(self, pool: PoolConfig, key: MemberKey, reading: Reading, duration: float) -> dict:
        doc = {
            "scraped_at": time.time(),
            "status": "ok" if reading.error is None else "error",
            "error": reading.error,
            **reading.doc_fields(),
            "duration": round(duration, 6),
            "scraper": self.duty.shards.holder if self.duty.shards is not None else None,
        }
        if reading.error is not None:
            # Keep what was last known about the engine for status displays; the metrics themselves are gone.
            last = self._last.get(key[0], {}).get(key[1], {})
            doc["engine"] = (
                doc["engine"] or last.get("engine") or (None if pool.engine_type == "auto" else pool.engine_type)
            )
            doc["detected_variant"] = last.get("detected_variant")
            doc["detection_status"] = "failed"
        return doc

    # --- logging of changes only (one line per transition, not per scrape) --------------------------------
    def _note(self, pool_key: str, mid: str, doc: dict) -> None:
        pool_last = self._last.setdefault(pool_key, {})
        last = pool_last.get(mid)
        pool_last[mid] = doc
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
        if (had_all := self._was_ok.get(pool_key)) is not None:
            had_all &= current
        if (last := self._last.get(pool_key)) is not None:
            for mid in [m for m in last if m not in current]:
                del last[mid]
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
        period = self.interval()
        tick = math.floor(self.now() / period)  # the first cycle runs at once, for the tick in progress
        while not stop.is_set():
            started = self.now()
            lateness = max(0.0, started - tick * period)
            # With a lease, a lease taken while this cycle runs (it then found nothing to do) must still wake the
            # wait below: nobody scraped this tick, so scrape at once rather than a whole interval later. A shard
            # member that joins during a cycle waits for the next tick instead: the others have scraped this one
            # with the old split, and a member must not be scraped twice in one tick.
            lease_mode = self.duty.shards is None
            if lease_mode:
                self._wake.clear()
            scraped = await self._cycle_or_stop(stop, tick * period)
            if scraped is None:
                return
            if lease_mode and scraped:
                self._wake.clear()  # the lease was taken while this cycle ran, and the cycle did this tick's work
            ended = self.now()
            duration = ended - started
            # The next tick's window is [(tick+1) x period, (tick+2) x period): a cycle that ends inside it starts
            # the next one at once (late); the ticks whose whole window passed are skipped.
            current = math.floor(ended / period)
            skipped = max(0, current - (tick + 1))
            self.skipped_ticks += skipped
            shards = self.duty.shards
            self.telemetry.cycle(
                duration,
                lateness,
                skipped,
                self.cycle_stats[0],
                scraped,
                len(shards.holders_at(tick * period)) if shards is not None else 1,
            )
            if duration > period or skipped:
                logger.warning(
                    "scrape cycle took {:.3f} s and started {:.3f} s after its tick; the interval is {:.3f} s: "
                    "{} tick(s) skipped",
                    duration,
                    lateness,
                    period,
                    skipped,
                )
            await self._save_stats()
            if self.interval() != period:  # reloaded: tick numbers count in the new interval from now on
                period = self.interval()
                tick = math.floor(ended / period)
            else:
                tick = max(tick + 1, current)
            delay = tick * period + self.rng.uniform(0.0, min(JITTER_FRACTION * period, JITTER_MAX_S)) - self.now()
            if not lease_mode:
                self._wake.clear()
            waiting = [asyncio.ensure_future(e.wait()) for e in (stop, self._wake)]
            await asyncio.wait(waiting, timeout=max(0.0, delay), return_when=asyncio.FIRST_COMPLETED)
            for task in waiting:
                task.cancel()
            if self._wake.is_set():
                tick = math.floor(self.now() / period)  # (re)joined: this tick now, the schedule from here

    async def _save_stats(self) -> None:
        """This scraper's last cycle in Redis, for `llmsched status` and the status page."""
        shards = self.duty.shards
        holder = shards.holder if shards is not None else PUBLISHER
        stats = {**self.telemetry.last_cycle, "interval": self.interval(), "at": time.time()}
        await self._redis(scrape_stats.save, self.store, PUBLISHER, holder, stats)

    async def _cycle_or_stop(self, stop: asyncio.Event, at: float) -> int | None:
        """Run one cycle for the tick at `at`: the targets scraped; None when `stop` was set first (the cycle is
        then cancelled)."""
        cycle = asyncio.ensure_future(self.run_cycle(at))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({cycle, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (cycle, stopper):
                if not task.done():
                    task.cancel()
            await asyncio.gather(cycle, stopper, return_exceptions=True)
        if cycle.cancelled() or stop.is_set():
            return None
        if (exc := cycle.exception()) is not None:  # a bug, not an outage: log it and keep the schedule
            logger.opt(exception=exc).error("scrape cycle failed")
            return 0
        return cycle.result()


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
