"""Sharded scrapers as real processes (`llmsched scraper`, a real Redis, engines served on 127.0.0.1 that count the
scrapes they get): the members are split across the live scrapers, each member scraped once per tick by exactly one
of them (never twice, never skipped), a killed scraper's members are fresh again within 5 s, a scraper that joins
takes a share without any member being scraped twice."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import redis
import yaml
from aiohttp import web

from llmsched.shared.members import Member

from tests.collectors.scrape_expositions import VLLM_NEW
from tests.helpers import make_store

POOL = "shard_pool"
ENGINES = 12
INTERVAL_S = 0.5
TAKEOVER_LIMIT_S = 5.0
WINDOW_S = 4.0  # 8 ticks


async def until(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.05)
    return value


@asynccontextmanager
async def counting_engines(n: int) -> AsyncIterator[tuple[list[int], Counter]]:
    """`n` engines on 127.0.0.1 serving a vLLM body; yields their ports and a Counter of scrapes per port."""
    hits: Counter = Counter()

    async def metrics(request: web.Request) -> web.Response:
        hits[request.transport.get_extra_info("sockname")[1]] += 1
        return web.Response(text=VLLM_NEW, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)  # type: ignore[arg-type]
    await runner.setup()
    ports = []
    for _ in range(n):
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ports.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    try:
        yield ports, hits
    finally:
        await runner.cleanup()


def start_scraper(config: Path, redis_url: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "REDIS_URL": redis_url, "TEST_F5_PW": "pw"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "llmsched.cli.main", "scraper", "--config", str(config)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stats(r: redis.Redis, since: float) -> dict[str, dict]:
    """The last cycle of every scraper that finished one after `since` (epoch seconds)."""
    out = {}
    for holder, raw in r.hgetall("llmsched:stats:scraper").items():
        doc = json.loads(raw)
        if doc["at"] > since:
            out[holder.decode()] = doc
    return out


def pid_of(holder: str) -> int:
    return int(holder.split(":")[1])


async def counts_over_window(hits: Counter, ports: list[int]) -> list[int]:
    hits.clear()
    await asyncio.sleep(WINDOW_S)
    return [hits[p] for p in ports]


async def test_scrapers_split_the_members_take_over_a_dead_ones_share_and_welcome_a_newcomer(
    tmp_path: Path, redis_url: str
) -> None:
    r = redis.Redis.from_url(redis_url)
    store = make_store(redis_url)
    config = tmp_path / "scheduler-config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "f5": {"host": "127.0.0.1", "password_env": "TEST_F5_PW"},
                "scheduler": {"metrics_fetch_interval": int(INTERVAL_S * 1000), "stale_after": 30},
                "telemetry": {"poller_port": 0, "scraper_port": 0, "scorer_port": 0},
                "pools": [{"name": POOL, "engine_type": "vllm", "metrics": {"timeout": 1}}],
            }
        )
    )
    log = tmp_path / "scrapers.log"
    procs: list[subprocess.Popen] = []
    async with counting_engines(ENGINES) as (ports, hits):
        members = [Member(address="127.0.0.1", port=p) for p in ports]
        store.set_members(
            f"{POOL}:Common",
            {"fetched_at": time.time(), "members": [m.to_dict() for m in members], "error": None, "error_at": None},
        )
        try:
            procs = [start_scraper(config, redis_url, log) for _ in range(3)]
            started = time.time()

            def split_in_three() -> dict[str, dict] | None:
                # Each scraper's last cycle covers its own share; together exactly every member. (Right after a
                # join, a scraper's last cycle may still be one from before it: wait for one cycle of each since.)
                last = stats(r, started)
                shares = [s["targets"] for s in last.values()]
                return last if len(last) == 3 and all(shares) and sum(shares) == ENGINES else None

            last = await until("three scrapers sharing the members, each member once", split_in_three, 20)

            counts = await counts_over_window(hits, ports)
            print(f"\n3 scrapers, {ENGINES} members, {WINDOW_S} s at {INTERVAL_S} s: scrapes per member {counts}")
            assert all(7 <= c <= 9 for c in counts), counts  # 8 ticks: once per tick each, never twice, none left

            # kill -9 the scraper with the largest share: its members are fresh again within 5 s.
            victim = max(last, key=lambda h: last[h]["targets"])
            os.kill(pid_of(victim), signal.SIGKILL)
            killed, wall = time.monotonic(), time.time()

            def all_fresh() -> bool:
                docs = store.metrics(f"{POOL}:Common")
                return len(docs) == ENGINES and all(d["scraped_at"] > wall + 0.05 for d in docs.values())

            await until("every member scraped after the kill", all_fresh, TAKEOVER_LIMIT_S + 5)
            takeover = time.monotonic() - killed
            rebalanced = time.time()
            survivors = await until("two scrapers covering every member", lambda: _covering(r, rebalanced, 2), 10)
            assert victim not in survivors

            # A newcomer joins: it takes a share; meanwhile no member is scraped twice in a tick.
            procs.append(start_scraper(config, redis_url, log))
            joined = time.time()
            counts = await counts_over_window(hits, ports)
            print(f"takeover after kill -9: {takeover:.2f} s; while a scraper joined: scrapes per member {counts}")
            assert all(c <= 9 for c in counts), counts
            assert takeover < TAKEOVER_LIMIT_S
            after = await until("three scrapers covering every member", lambda: _covering(r, joined + 2, 3), 10)
            assert all(s["targets"] for s in after.values()), after
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            codes = [proc.wait(timeout=10) for proc in procs]
    assert codes.count(-signal.SIGKILL) == 1 and codes.count(0) == 3, (codes, log.read_text()[-3000:])
    assert r.hlen("llmsched:shards:scraper") == 0  # every SIGTERM'd scraper left; the killed one expired


def _covering(r: redis.Redis, since: float, n: int) -> dict[str, dict] | None:
    last = stats(r, since)
    return last if len(last) == n and sum(s["targets"] for s in last.values()) == ENGINES else None
