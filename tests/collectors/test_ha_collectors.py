"""HA collectors as real processes: `llmsched up --ha` runs two pollers and two scrapers against the BIG-IP and
engine emulators and a Redis the test owns (tests/collectors/up_stack.py). Exactly one poller reads BIG-IP
(counted by the emulator); kill -9 of the poller lease holder, or of a scraper with a share of the members, hands
its work to another process within 5 s; a SIGTERM'd holder releases its lease so the standby takes over without
waiting for the TTL. (Sharding itself: tests/collectors/test_sharded_scrapers.py.)"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from tests.collectors.up_stack import FETCH_S, POOL, up_stack
from tests.shared.redis_servers import RedisProc

POLL_GET = f"GET /mgmt/tm/ltm/pool/~Common~{POOL}/members"
TAKEOVER_LIMIT_S = 5.0


async def until(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := await asyncio.to_thread(check)):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.02)
    return value


def holder_pid(r: redis.Redis, role: str) -> int | None:
    raw = r.get(f"llmsched:lease:{role}")
    return int(raw.decode().split(":")[1]) if raw else None


def scraper_with_a_share(r: redis.Redis) -> int:
    """The pid of a live scraper whose last cycle scraped members (llmsched:stats:scraper)."""
    fresh = [json.loads(v) | {"holder": k.decode()} for k, v in r.hgetall("llmsched:stats:scraper").items()]
    owning = [s for s in fresh if s["targets"] and time.time() - s["at"] < 2]
    assert owning, fresh
    return int(owning[0]["holder"].split(":")[1])


async def test_one_poller_works_scrapers_share_and_a_killed_one_is_replaced_within_5_s(tmp_path: Path) -> None:
    server = RedisProc().start()
    r = server.client()
    try:
        async with up_stack(tmp_path, {"url": server.url}, "--ha") as stack:
            text = stack.output()
            assert text.count("poller lease acquired") == 1 and "poller lease held by" in text, text
            await until("two scrapers sharing", lambda: "2 live scraper(s) share the members" in stack.output(), 10)

            # Steady state: one poller's worth of BIG-IP reads.
            stack.bigip.requests.clear()
            await asyncio.sleep(3.0)
            polls = stack.bigip.requests[POLL_GET]
            print(f"\n2 pollers, fetch every {FETCH_S} s: {polls} BIG-IP pool reads in 3 s (one poller: 6)")
            assert 4 <= polls <= 8

            # kill -9 the poller holding the lease: BIG-IP is read again within 5 s.
            dead = holder_pid(r, "poller")
            os.kill(dead, signal.SIGKILL)
            killed, reads = time.monotonic(), stack.bigip.requests[POLL_GET]
            # A read the killed poller had in flight may still land: the standby's takeover is a new holder reading.
            await until(
                "the standby to take the lease and read BIG-IP",
                lambda: holder_pid(r, "poller") not in (None, dead) and stack.bigip.requests[POLL_GET] > reads,
                TAKEOVER_LIMIT_S + 5,
            )
            poll_takeover = time.monotonic() - killed

            # kill -9 a scraper with a share of the members: fresh scrapes of every member within 5 s.
            dead = scraper_with_a_share(r)
            os.kill(dead, signal.SIGKILL)
            killed, wall = time.monotonic(), time.time()

            def scraped_after_kill() -> bool:
                docs = r.hgetall(f"llmsched:pool:{{{POOL}:Common}}:metrics").values()
                return bool(docs) and all(json.loads(d)["scraped_at"] > wall + 0.05 for d in docs)

            await until("fresh scrapes", scraped_after_kill, TAKEOVER_LIMIT_S + 5)
            scrape_takeover = time.monotonic() - killed

            # SIGTERM: the holder releases its lease, the standby takes over without waiting for the 3 s TTL.
            leaving = holder_pid(r, "poller")
            os.kill(leaving, signal.SIGTERM)
            stopped = time.monotonic()
            await until("another poller to hold the lease", lambda: holder_pid(r, "poller") not in (None, leaving), 5)
            handover = time.monotonic() - stopped
            print(
                f"takeover after kill -9: poller {poll_takeover:.2f} s (first BIG-IP read), scraper "
                f"{scrape_takeover:.2f} s (first fresh scrape); after SIGTERM: lease handed over in "
                f"{handover:.2f} s"
            )
            assert poll_takeover < TAKEOVER_LIMIT_S and scrape_takeover < TAKEOVER_LIMIT_S
            assert handover < 2.0, "a SIGTERM'd holder must release its lease, not let it expire"
            await until("the release in the log", lambda: "poller lease released" in stack.output(), 5)
        assert stack.exit_code == 0, stack.output()[-3000:]
    finally:
        server.close()
