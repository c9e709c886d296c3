"""`llmsched up` as a real process tree against the BIG-IP and engine emulators (served in the test's event loop
on 127.0.0.1) and a Redis the test chooses (a URL, or Sentinels): for the HA and Sentinel tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from llmsched.emulators.engine import bound_port as engine_port
from llmsched.emulators.engine import serve_engine
from llmsched.emulators.engine_state import EngineSpec
from llmsched.emulators.f5 import bound_port, serve_f5
from llmsched.emulators.f5_state import F5State

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
POOL = "llm_pool"
FETCH_S = 0.5


@dataclass
class UpStack:
    api: str
    members: list[str]
    bigip: F5State
    up: subprocess.Popen
    log: Path
    session: aiohttp.ClientSession
    exit_code: int | None = None

    async def select(self) -> str:
        """The answer to one select; "" when the API did not answer at all."""
        body = {"pool_name": POOL, "partition": "Common", "members": self.members}
        try:
            async with self.session.post(f"{self.api}/scheduler/select", json=body) as resp:
                return (await resp.text()).strip() if resp.status == 200 else ""
        except aiohttp.ClientError:
            return ""

    async def wait_for_a_pick(self, timeout: float) -> float:
        """Seconds until a select answers a member (asked every 10 ms)."""
        started = time.monotonic()
        while await self.select() not in self.members:
            assert time.monotonic() - started < timeout and self.up.poll() is None, self.output()[-3000:]
            await asyncio.sleep(0.01)
        return time.monotonic() - started

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def config_doc(f5_port: int, cert: str, api_port: int, redis: dict[str, Any]) -> dict[str, Any]:
    return {
        "global": {"interval": 1, "api_host": "127.0.0.1", "api_port": api_port},
        "f5": {"host": "127.0.0.1", "port": f5_port, "password_env": "TEST_F5_PW", "ca_bundle": cert},
        "redis": redis,
        "scheduler": {"pool_fetch_interval": FETCH_S, "metrics_fetch_interval": 500},
        "telemetry": {"poller_port": 0, "scraper_port": 0, "scorer_port": 0},
        "modes": [{"name": "s1"}],
        "pools": [{"name": POOL, "engine_type": "vllm", "metrics": {"timeout": 1}}],
    }


@asynccontextmanager
async def up_stack(tmp_path: Path, redis: dict[str, Any], *up_args: str, engines: int = 2) -> AsyncIterator[UpStack]:
    """`llmsched up` with `redis` as its config's redis section; yields once a select picks a member. On exit it
    sends SIGTERM and records the exit code in `exit_code` (None: it had to be killed after 10 s)."""
    servers = [await serve_engine("127.0.0.1", 0, EngineSpec(engine="vllm")) for _ in range(engines)]
    members = [f"127.0.0.1:{engine_port(s)}" for s in servers]
    state = F5State.from_dict(
        {"users": {"admin": "f5-pw"}, "pools": [{"name": POOL, "members": [{"name": m} for m in members]}]}
    )
    f5_runner, cert = await serve_f5("127.0.0.1", 0, state, tls=True)
    api_port = free_port()
    config = tmp_path / "scheduler-config.yaml"
    config.write_text(yaml.safe_dump(config_doc(bound_port(f5_runner), cert, api_port, redis)))
    env = {**{k: v for k, v in os.environ.items() if k != "REDIS_URL"}, "TEST_F5_PW": "f5-pw", "PYTHONPATH": str(REPO)}
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "llmsched.cli.main", "up", "--config", str(config), "--workers", "1", *up_args],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    stack = UpStack(
        f"http://127.0.0.1:{api_port}",
        members,
        state,
        up,
        log,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)),
    )
    try:
        await stack.wait_for_a_pick(timeout=40)
        yield stack
    finally:
        await stack.session.close()
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            try:  # in a thread: the emulators on this loop must keep answering (the poller logs out)
                stack.exit_code = await asyncio.to_thread(up.wait, 10)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait()
        await f5_runner.cleanup()
        for server in servers:
            await server.cleanup()
