"""Collectors with leases and a Redis watchdog (collectors/ha.py), in process: only the lease holder polls or scrapes,
a holder past its lease stops at once, and what Redis lost is written back from memory without asking BIG-IP
or the engines again. Real BIG-IP and engine emulators over HTTP(S), a real Redis."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import redis
from rq import Queue

from llmsched.collectors.f5_client import F5Client
from llmsched.collectors.ha import CollectorHA
from llmsched.collectors.poller import Poller
from llmsched.collectors.scraper import Scraper
from llmsched.emulators.engine import bound_port, serve_engine
from llmsched.emulators.engine_state import EngineSpec
from llmsched.shared.config_model import Config, MetricsConfig, PoolConfig, SchedulerConfig
from llmsched.shared.lease import Lease
from llmsched.shared.scoring_queue import SERIALIZER
from llmsched.shared.store import Store

from tests.collectors.conftest import BigIP
from tests.helpers import make_store

POOL = PoolConfig(name="vllm_pool", engine_type="vllm", metrics=MetricsConfig(timeout=1.0))
POLL_GET = "GET /mgmt/tm/ltm/pool/~Common~vllm_pool/members"


class Clock:
    """The monotonic clock of one lease, movable by the test (a pause longer than the TTL)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def lease(store: Store, role: str, ttl: float = 0.6, clock: Callable[[], float] = time.monotonic) -> Lease:
    return Lease(redis.Redis(connection_pool=store.client.connection_pool), store.keys.lease(role), ttl, clock=clock)


def poller(bigip: BigIP, store: Store, duty: CollectorHA, fetch_s: float = 0.2) -> Poller:
    config = Config(
        f5=bigip.f5_config(),
        pools=(POOL,),
        source="test",
        scheduler=SchedulerConfig(pool_fetch_interval=fetch_s, ha_lease_ttl=0.6),
    )
    return Poller(config, store, client_factory=lambda c: F5Client(c.f5), duty=duty)


async def until(what: str, check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)
    return value


async def running(*jobs: Callable[[asyncio.Event], Awaitable[None]]) -> tuple[list[asyncio.Event], list[asyncio.Task]]:
    stops = [asyncio.Event() for _ in jobs]
    return stops, [asyncio.create_task(job(stop)) for job, stop in zip(jobs, stops)]


async def test_only_the_lease_holder_polls_bigip_and_the_standby_takes_over_when_it_stops(
    bigip: BigIP, redis_url: str
) -> None:
    store = make_store(redis_url)
    first = poller(bigip, store, CollectorHA("poller", store, lease(store, "poller")))
    second = poller(bigip, store, CollectorHA("poller", store, lease(store, "poller")))
    stops, tasks = await running(first.run, second.run)
    await until("one poller to hold the lease", lambda: first.duty.active or second.duty.active)
    holder, standby = (0, 1) if first.duty.active else (1, 0)
    bigip.state.requests.clear()
    await asyncio.sleep(1.2)
    polls = bigip.state.requests[POLL_GET]
    print(f"\ntwo pollers, fetch every 0.2 s: {polls} BIG-IP pool reads in 1.2 s")
    assert 4 <= polls <= 8  # one poller's worth (6); both polling would read about 12 times
    stops[holder].set()  # a clean stop releases the lease: the standby polls at once
    stopped = time.monotonic()
    await tasks[holder]
    before = bigip.state.requests[POLL_GET]
    await until("the standby to poll", lambda: bigip.state.requests[POLL_GET] > before, timeout=3)
    print(f"standby polled {time.monotonic() - stopped:.2f} s after the holder's SIGTERM-like stop")
    assert (first, second)[standby].duty.active
    stops[standby].set()
    await tasks[standby]


async def test_a_holder_past_its_lease_deadline_polls_no_more(bigip: BigIP, redis_url: str) -> None:
    store = make_store(redis_url)
    clock = Clock()
    p = poller(bigip, store, CollectorHA("poller", store, lease(store, "poller", ttl=3.0, clock=clock)))
    try:
        assert p.duty.lease.acquire()
        assert (await p.poll_once()) == {POOL.key: None}
        reads = bigip.state.requests[POLL_GET]
        clock.offset = 3.5  # e.g. the process was frozen for longer than the lease's TTL
        assert (await p.poll_once()) == {} and bigip.state.requests[POLL_GET] == reads
    finally:
        await p.close()


async def test_an_emptied_redis_gets_the_config_and_membership_back_without_reading_bigip_again(
    bigip: BigIP, redis_url: str
) -> None:
    store = make_store(redis_url)
    p = poller(bigip, store, CollectorHA("poller", store, lease(store, "poller"), watch_interval=0.05), fetch_s=60)
    stops, tasks = await running(p.run)
    try:
        written = await until("the first membership", lambda: store.members(POOL.key))
        await until("its scoring job", lambda: rescores(store))  # so it is not enqueued after the flush
        reads = bigip.state.requests[POLL_GET]
        redis.Redis.from_url(redis_url).flushall()
        flushed = time.monotonic()
        back = await until("the membership to be written back", lambda: store.members(POOL.key), timeout=2)
        print(f"\nmembership and config back {time.monotonic() - flushed:.2f} s after FLUSHALL")
        assert back == written and bigip.state.requests[POLL_GET] == reads
        assert store.pool_keys() == [POOL.key] and store.pool_config(POOL.key) is not None
        assert p.duty.lease.owner() == p.duty.lease.holder
        # the rescore is asked for right after the write-back: wait for it rather than race it
        assert await until("the recovery rescore", lambda: rescores(store)) == [(POOL.key, "recovery")]
    finally:
        stops[0].set()
        await tasks[0]


def rescores(store: Store) -> list[tuple[str, str]]:
    jobs = Queue(store.keys.scoring_queue, connection=store.client, serializer=SERIALIZER).jobs
    return [(job.args[0], job.args[2]) for job in jobs]


def counting(s: Scraper) -> Counter:
    """Count the GETs a scraper sends, per URL path (plain-HTTP engines do not go through its aiohttp session)."""
    sent: Counter = Counter()
    fetch = s.fetcher.fetch

    async def counted(url: str, metrics: MetricsConfig) -> str:
        sent[urlsplit(url).path] += 1
        return await fetch(url, metrics)

    s.fetcher.fetch = counted  # type: ignore[method-assign]
    return sent


async def engine_pool(store: Store) -> tuple[Any, str]:
    """An engine emulator and a membership naming it, as the poller would have written it."""
    engine = await serve_engine("127.0.0.1", 0, EngineSpec(engine="vllm"))
    port = bound_port(engine)
    store.set_members(
        POOL.key,
        {
            "fetched_at": time.time(),
            "error": None,
            "error_at": None,
            "members": [{"address": "127.0.0.1", "port": port, "name": f"127.0.0.1:{port}"}],
        },
    )
    return engine, f"127.0.0.1:{port}"


def scraper(store: Store, session: aiohttp.ClientSession, interval_ms: int, watch: float | None = None) -> Scraper:
    config = Config(
        pools=(POOL,), source="test", scheduler=SchedulerConfig(metrics_fetch_interval=interval_ms, ha_lease_ttl=0.6)
    )
    return Scraper(config, store, session, duty=CollectorHA("scraper", store, lease(store, "scraper"), watch))


async def test_only_the_scraper_holding_the_lease_scrapes_and_the_standby_takes_over_when_it_stops(
    redis_url: str,
) -> None:
    store = make_store(redis_url)
    engine, _ = await engine_pool(store)
    s1, s2 = aiohttp.ClientSession(), aiohttp.ClientSession()
    scrapers = [scraper(store, s1, 200), scraper(store, s2, 200)]
    sent1, sent2 = counting(scrapers[0]), counting(scrapers[1])
    stops, tasks = await running(*(s.run for s in scrapers))
    try:
        await asyncio.sleep(1.0)
        counts = [sent1["/metrics"], sent2["/metrics"]]
        print(f"\ntwo scrapers, every 0.2 s: {counts} scrapes in 1 s")
        assert sorted(counts)[0] == 0 and sorted(counts)[1] >= 3
        holder = counts.index(max(counts))
        standby_sent = (sent1, sent2)[1 - holder]
        stops[holder].set()
        await tasks[holder]
        await until("the standby to scrape", lambda: standby_sent["/metrics"] > 0, timeout=2)
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks)
        await s1.close()
        await s2.close()
        await engine.cleanup()


async def test_an_emptied_redis_gets_the_last_scrape_back_without_scraping_again(redis_url: str) -> None:
    store = make_store(redis_url)
    engine, member = await engine_pool(store)
    session = aiohttp.ClientSession()
    s = scraper(store, session, interval_ms=60_000, watch=0.05)
    sent = counting(s)
    stops, tasks = await running(s.run)
    try:
        scraped = await until("the first scrape", lambda: store.metrics(POOL.key).get(member))
        await until("its scoring job", lambda: rescores(store))  # so it is not enqueued after the flush
        redis.Redis.from_url(redis_url).flushall()
        flushed = time.monotonic()
        back = await until("the scrape to be written back", lambda: store.metrics(POOL.key).get(member), timeout=2)
        print(f"\nlast scrape and config back {time.monotonic() - flushed:.2f} s after FLUSHALL")
        assert back == scraped and sent["/metrics"] == 1
        assert store.pool_keys() == [POOL.key]
        assert await until("the recovery rescore", lambda: rescores(store)) == [(POOL.key, "recovery")]
    finally:
        stops[0].set()
        await tasks[0]
        await session.close()
        await engine.cleanup()


async def _cycles_run(redis_url: str, scraped: int) -> int:
    """Cycles a scraper's schedule runs in 0.3 s of a 60 s interval when the lease is taken during its first cycle
    and that cycle scraped `scraped` targets."""
    store = make_store(redis_url)
    session = aiohttp.ClientSession()
    s = scraper(store, session, interval_ms=60_000)
    runs = []

    async def cycle(at: float | None = None) -> int:
        runs.append(at)
        if len(runs) == 1:
            s._on_lease(True)  # the keeper took the lease while this cycle ran
            return scraped
        return 1

    s.run_cycle = cycle  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.ensure_future(s._schedule(stop))
    await asyncio.sleep(0.3)
    stop.set()
    await task
    await session.close()
    return len(runs)


async def test_a_lease_taken_during_a_cycle_that_scraped_does_not_scrape_the_tick_again(redis_url: str) -> None:
    assert await _cycles_run(redis_url, scraped=1) == 1


async def test_a_lease_taken_during_a_cycle_that_found_nothing_to_do_scrapes_the_tick_at_once(redis_url: str) -> None:
    assert await _cycles_run(redis_url, scraped=0) == 2
