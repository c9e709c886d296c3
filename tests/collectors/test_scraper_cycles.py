"""The scraper's cycles against a real Redis: scoring jobs, an absent membership, Redis down, config changes, and
stopping, with engine emulators over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from llmsched.shared.config_model import FallbackConfig
from llmsched.shared.scoring_queue import SCORING_JOB, scoring_queue
from llmsched.shared.store import Store, connect

from tests.collectors.test_scraper import (  # noqa: F401  (h, log_lines: the fixtures)
    POOL,
    Harness,
    config,
    h,
    log_lines,
    member_id,
    pool,
)
from tests.conftest import free_port


# --- Redis, scoring jobs, config ---------------------------------------------------------------------------
async def test_a_scoring_job_is_enqueued_after_a_pool_is_scraped(h: Harness):
    e = await h.engine()
    h.members(POOL, (e.host, e.port))
    await h.scraper(pool()).scrape_pool(pool())
    queue = scoring_queue(h.store)
    jobs = [queue.fetch_job(job_id) for job_id in queue.job_ids]
    assert [(j.func_name, j.args[0], j.args[2]) for j in jobs] == [(SCORING_JOB, POOL, "scrape")]


async def test_no_membership_yet_means_nothing_scraped_and_no_error(h: Harness):
    assert await h.scraper(pool()).scrape_pool(pool()) is None
    assert h.store.metrics(POOL) == {}


async def test_redis_down_is_logged_once_and_never_raises(h: Harness, log_lines):
    dead = Store(connect(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.2), "llmsched")
    scraper = h.scraper(pool(), store=dead)
    await scraper.run_cycle()
    await scraper.run_cycle()
    assert not scraper.published and scraper.cycles == 2
    assert len([line for line in log_lines if "Redis unavailable" in line]) == 1


async def test_a_new_config_is_applied_at_the_next_cycle_and_published(h: Harness):
    e = await h.engine()
    h.members(POOL, (e.host, e.port))
    scraper = h.scraper(pool(path="/nope"))
    await scraper.run_cycle()
    assert h.store.metrics(POOL)[member_id(e)]["error"].startswith("HTTP 404")
    assert h.store.pool_config(POOL)["pool_fallback"] is False
    fixed = replace(pool(), fallback=FallbackConfig(pool_fallback=True))
    scraper.apply_config(config(fixed))
    assert scraper.config.pool(POOL).metrics.path == "/nope"  # not before the next cycle
    await scraper.run_cycle()
    assert h.store.metrics(POOL)[member_id(e)]["status"] == "ok"
    assert h.store.pool_config(POOL)["pool_fallback"] is True


async def test_run_repeats_cycles_until_stopped(h: Harness):
    e = await h.engine()
    h.members(POOL, (e.host, e.port))
    scraper = h.scraper(pool(), interval_ms=20)
    stop = asyncio.Event()
    task = asyncio.create_task(scraper.run(stop))
    for _ in range(500):
        if scraper.cycles >= 3:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert scraper.cycles >= 3


async def test_stop_cancels_a_cycle_stuck_on_a_hanging_engine(h: Harness):
    e = await h.engine()
    await e.admin("/mode", {"mode": "hang"})
    h.members(POOL, (e.host, e.port))
    scraper = h.scraper(pool(timeout=60))
    stop = asyncio.Event()
    task = asyncio.create_task(scraper.run(stop))
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert scraper.cycles == 0


async def test_a_cycle_scrapes_its_pools_in_config_order_whichever_membership_read_returns_first(h: Harness):
    first, second = pool(name="first_pool"), pool(name="second_pool")
    a, b = await h.engine(), await h.engine()
    h.members(first.key, (a.host, a.port))
    h.members(second.key, (b.host, b.port))
    scraper = h.scraper(first, second)
    read = h.store.members

    def slow_first(pool_key: str) -> dict | None:
        if pool_key == first.key:
            time.sleep(0.3)  # this read returns last
        return read(pool_key)

    scraper.store.members = slow_first  # type: ignore[method-assign]
    fetched: list[str] = []
    fetch = scraper.fetcher.fetch

    async def recording(url, metrics):  # type: ignore[no-untyped-def]
        fetched.append(url)
        return await fetch(url, metrics)

    scraper.fetcher.fetch = recording  # type: ignore[method-assign]
    await scraper.run_cycle()
    assert fetched == [f"http://{a.host}:{a.port}/metrics", f"http://{b.host}:{b.port}/metrics"]
