"""HA collectors as real processes: `llmsched up --ha` runs two pollers and two scrapers against the BIG-IP and
engine emulators (on 127.0.0.1, in this test's event loop) and a Redis the test owns. Exactly one poller reads
BIG-IP (counted by the emulator); kill -9 of a lease holder hands its work to another process within 5 s; a
SIGTERM'd holder releases its lease so the standby takes over without waiting for the TTL."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import redis
import yaml

from emulators.engine import bound_port as engine_port
from emulators.engine import serve_engine
from emulators.engine_state import EngineSpec
from emulators.f5 import bound_port, serve_f5
from emulators.f5_state import F5State
from tests.conftest import free_port
from tests.shared.redis_servers import RedisProc

REPO = Path(__file__).resolve().parents[2]
POOL = "llm_pool"
POLL_GET = f"GET /mgmt/tm/ltm/pool/~Common~{POOL}/members"
FETCH_S = 0.5
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


def config_doc(f5_port: int, cert: str, api_port: int, redis_url: str) -> dict[str, Any]:
    return {
        "global": {"interval": 1, "api_host": "127.0.0.1", "api_port": api_port},
        "f5": {"host": "127.0.0.1", "port": f5_port, "password_env": "TEST_F5_PW", "ca_bundle": cert},
        "redis": {"url": redis_url},
        "scheduler": {"pool_fetch_interval": FETCH_S, "metrics_fetch_interval": 500},
        "telemetry": {"poller_port": 0, "scraper_port": 0, "scorer_port": 0},
        "modes": [{"name": "s1"}],
        "pools": [{"name": POOL, "engine_type": "vllm", "metrics": {"timeout": 1}}],
    }


async def test_one_poller_and_one_scraper_work_and_a_killed_holder_is_replaced_within_5_s(tmp_path: Path) -> None:
    server = RedisProc().start()
    r = server.client()
    engines = [await serve_engine("127.0.0.1", 0, EngineSpec(engine="vllm")) for _ in range(2)]
    members = [f"127.0.0.1:{engine_port(e)}" for e in engines]
    state = F5State.from_dict({"users": {"admin": "f5-pw"},
                               "pools": [{"name": POOL, "members": [{"name": m} for m in members]}]})
    f5_runner, cert = await serve_f5("127.0.0.1", 0, state, tls=True)
    api = f"http://127.0.0.1:{free_port()}"
    config = tmp_path / "scheduler-config.yaml"
    config.write_text(yaml.safe_dump(config_doc(bound_port(f5_runner), cert, int(api.rsplit(":", 1)[1]),
                                                server.url)))
    env = {**{k: v for k, v in os.environ.items() if k != "REDIS_URL"}, "TEST_F5_PW": "f5-pw",
           "PYTHONPATH": str(REPO)}
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        up = subprocess.Popen([sys.executable, "-m", "cli.main", "up", "--config", str(config), "--ha",
                               "--workers", "1"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
    try:
        async def picks_a_member() -> bool:
            body = {"pool_name": POOL, "partition": "Common", "members": members}
            try:
                async with session.post(f"{api}/scheduler/select", json=body) as resp:
                    return (await resp.text()).strip() in members
            except aiohttp.ClientError:
                return False

        deadline = time.monotonic() + 40
        while not await picks_a_member():
            assert time.monotonic() < deadline and up.poll() is None, log.read_text()
            await asyncio.sleep(0.1)
        text = log.read_text()
        assert text.count("poller lease acquired") == 1 and "poller lease held by" in text, text
        assert text.count("scraper lease acquired") == 1 and "scraper lease held by" in text, text

        # Steady state: one poller's worth of BIG-IP reads.
        state.requests.clear()
        await asyncio.sleep(3.0)
        polls = state.requests[POLL_GET]
        print(f"\n2 pollers, fetch every {FETCH_S} s: {polls} BIG-IP pool reads in 3 s (one poller: 6)")
        assert 4 <= polls <= 8

        # kill -9 the poller holding the lease: BIG-IP is read again within 5 s.
        dead = holder_pid(r, "poller")
        os.kill(dead, signal.SIGKILL)
        killed, reads = time.monotonic(), state.requests[POLL_GET]
        await until("BIG-IP reads to resume", lambda: state.requests[POLL_GET] > reads, TAKEOVER_LIMIT_S + 5)
        poll_takeover = time.monotonic() - killed
        assert holder_pid(r, "poller") not in (None, dead)

        # kill -9 the scraper holding the lease: fresh scrapes reach Redis again within 5 s.
        dead = holder_pid(r, "scraper")
        os.kill(dead, signal.SIGKILL)
        killed, wall = time.monotonic(), time.time()

        def scraped_after_kill() -> bool:
            docs = r.hgetall(f"llmsched:pool:{{{POOL}:Common}}:metrics").values()
            return bool(docs) and all(json.loads(d)["scraped_at"] > wall + 0.05 for d in docs)
        await until("fresh scrapes", scraped_after_kill, TAKEOVER_LIMIT_S + 5)
        scrape_takeover = time.monotonic() - killed
        assert holder_pid(r, "scraper") not in (None, dead)

        # SIGTERM: the holder releases its lease, the standby polls without waiting for the 3 s TTL.
        leaving = holder_pid(r, "poller")
        os.kill(leaving, signal.SIGTERM)
        stopped = time.monotonic()
        await until("another poller to hold the lease", lambda: holder_pid(r, "poller") not in (None, leaving), 5)
        handover = time.monotonic() - stopped
        print(f"takeover after kill -9: poller {poll_takeover:.2f} s (first BIG-IP read), scraper "
              f"{scrape_takeover:.2f} s (first fresh scrape); after SIGTERM: lease handed over in {handover:.2f} s")
        assert poll_takeover < TAKEOVER_LIMIT_S and scrape_takeover < TAKEOVER_LIMIT_S
        assert handover < 2.0, "a SIGTERM'd holder must release its lease, not let it expire"
        assert "poller lease released" in log.read_text()
    finally:
        await session.close()
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            try:
                code = await asyncio.to_thread(up.wait, 10)
            except subprocess.TimeoutExpired:
                up.kill()
                code = up.wait()
        await f5_runner.cleanup()
        for engine in engines:
            await engine.cleanup()
        server.close()
    assert code == 0, log.read_text()[-3000:]
