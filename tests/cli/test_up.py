"""End to end: `llmsched up` (private Redis, poller, scraper, scoring worker, API) against the emulators.

The emulated BIG-IP and three emulated vLLM engines run in the test's event loop on 127.0.0.1; `llmsched up`
runs as a real process tree, and the test talks to everything over HTTP like BIG-IP and an operator would.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from llmsched.cli.up import child_commands
from llmsched.emulators.engine import bound_port as engine_port
from llmsched.emulators.engine import serve_engine
from llmsched.emulators.engine_state import EngineSpec
from llmsched.emulators.f5 import bound_port, serve_f5
from llmsched.emulators.f5_state import F5State

from tests.conftest import free_port
from tests.helpers import alive, descendants

REPO = Path(__file__).resolve().parents[2]
POOL = "llm_pool"
POLL_S = 1.0


@dataclass
class Stack:
    api: str
    f5: str
    members: list[str]
    up: subprocess.Popen
    log: Path
    session: aiohttp.ClientSession
    f5_session: aiohttp.ClientSession  # trusts the emulated BIG-IP's self-signed certificate

    async def select(self, offered: list[str] | None = None) -> str:
        body = {"pool_name": POOL, "partition": "Common", "members": offered or self.members}
        async with self.session.post(f"{self.api}/scheduler/select", json=body) as resp:
            assert resp.status == 200
            return (await resp.text()).strip()

    async def shares(self, n: int) -> Counter[str]:
        return Counter([await self.select() for _ in range(n)])

    async def status(self) -> dict[str, Any]:
        try:
            async with self.session.get(f"{self.api}/pools/{POOL}/Common/status") as resp:
                return await resp.json() if resp.status == 200 else {}
        except aiohttp.ClientError:
            return {}

    async def engine_admin(self, member: str, path: str, body: Any) -> None:
        async with self.session.post(f"http://{member}/_emulator{path}", json=body) as resp:
            assert resp.status == 200, await resp.text()

    async def bigip_admin(self, method: str, path: str, body: Any) -> None:
        async with self.f5_session.request(method, f"{self.f5}/_emulator{path}", json=body) as resp:
            assert resp.status == 200, await resp.text()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


async def wait_for(what: str, check: Callable[[], Awaitable[Any]], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := await check():
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def config_doc(f5_port: int, cert: str, api_port: int) -> dict[str, Any]:
    return {
        "global": {"interval": 1, "api_host": "127.0.0.1", "api_port": api_port, "log_level": "INFO"},
        "f5": {
            "host": "127.0.0.1",
            "port": f5_port,
            "username": "admin",
            "password_env": "TEST_F5_PW",
            "ca_bundle": cert,
        },
        "scheduler": {"pool_fetch_interval": POLL_S, "metrics_fetch_interval": 500},
        "modes": [{"name": "s1", "w_a": 0.5, "w_b": 0.5}],
        "pools": [{"name": POOL, "engine_type": "vllm", "metrics": {"timeout": 1}}],
    }


@pytest.fixture()
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    engines = [
        await serve_engine("127.0.0.1", 0, EngineSpec(engine="vllm", kv_name=kv)) for kv in ("new", "old", "both")
    ]
    members = [f"127.0.0.1:{engine_port(r)}" for r in engines]
    state = F5State.from_dict(
        {"users": {"admin": "f5-pw"}, "pools": [{"name": POOL, "members": [{"name": m} for m in members]}]}
    )
    f5_runner, cert = await serve_f5("127.0.0.1", 0, state, tls=True)
    api_port = free_port()
    config = tmp_path / "scheduler-config.yaml"
    config.write_text(yaml.safe_dump(config_doc(bound_port(f5_runner), cert, api_port)))
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(TEST_F5_PW="f5-pw", PYTHONPATH=str(REPO))
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "llmsched.cli.main", "up", "--config", str(config), "--workers", "1"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    timeout = aiohttp.ClientTimeout(total=5)
    session = aiohttp.ClientSession(timeout=timeout)
    f5_session = aiohttp.ClientSession(
        timeout=timeout, connector=aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=cert))
    )
    s = Stack(
        f"http://127.0.0.1:{api_port}",
        f"https://127.0.0.1:{bound_port(f5_runner)}",
        members,
        up,
        log,
        session,
        f5_session,
    )
    try:

        async def all_scored() -> bool:
            ms = (await s.status()).get("members", [])
            return len(ms) == 3 and all(m["eligible"] for m in ms)

        await wait_for("every member to be scored", all_scored, timeout=30)
        yield s
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            try:  # in a thread: the emulators on this loop must keep answering (the poller logs out)
                await asyncio.to_thread(up.wait, 10)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait()
        await session.close()
        await f5_session.close()
        await f5_runner.cleanup()
        for runner in engines:
            await runner.cleanup()


async def test_member_disabled_on_bigip_stops_being_picked_within_one_poll_even_when_offered(stack: Stack) -> None:
    target = stack.members[0]
    assert target in await stack.shares(60)
    await stack.bigip_admin("PATCH", f"/pools/{POOL}/members/{target}", {"state": "disabled"})

    async def target_left_the_decisions() -> bool:
        # The decisions come from each API worker's in-memory snapshot, which follows Redis by push; the status
        # endpoint reads Redis itself, so the decisions are the thing to watch.
        return target not in await stack.shares(10)

    # One poll interval, plus a scoring job and a margin for a loaded machine.
    await wait_for("the disabled member to leave the decisions", target_left_the_decisions, timeout=POLL_S + 2)
    ms = {f"{m['ip']}:{m['port']}": m for m in (await stack.status()).get("members", [])}
    assert ms[target]["status"] == "disabled"
    picks = await stack.shares(100)  # the iRule still offers it: BIG-IP's view lags ours
    assert target not in picks and sum(picks.values()) == 100
    assert set(picks) <= set(stack.members[1:])


async def test_engine_load_moves_the_decisions_to_the_unloaded_member(stack: Stack) -> None:
    before = await stack.shares(150)
    idle = stack.members[2]
    for member in stack.members[:2]:
        await stack.engine_admin(member, "/metrics", {"waiting": 40, "kv": 0.9})

    async def loaded_seen() -> bool:
        ms = {f"{m['ip']}:{m['port']}": m for m in (await stack.status()).get("members", [])}
        return all((ms.get(m, {}).get("metrics") or {}).get("waiting_queue") == 40 for m in stack.members[:2])

    await wait_for("the forced load in the scores", loaded_seen, timeout=10)
    after = await stack.shares(150)
    assert after[idle] / 150 > 0.6, (before, after)
    assert after[idle] / 150 > before[idle] / 150 + 0.2, (before, after)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
async def test_sigterm_stops_every_process_and_the_private_redis_within_5_seconds(stack: Stack) -> None:
    tree = descendants(stack.up.pid)
    # poller, scraper, scorer, gunicorn master + 1 worker, redis-server
    assert len(tree) >= 6, stack.output()
    redis_port = int(re.search(r"Redis private redis://127.0.0.1:(\d+)/0", stack.output()).group(1))
    stack.up.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(stack.up.wait, 5) == 0, stack.output()
    assert [p for p in tree if alive(p)] == []
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", redis_port)
    assert "did not stop" not in stack.output()


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
async def test_a_child_that_dies_is_restarted_with_the_restart_logged(stack: Stack) -> None:
    scorer = next(p for p in descendants(stack.up.pid) if " scorer --config" in cmdline(p))
    os.kill(scorer, signal.SIGKILL)

    async def restarted() -> int | None:
        return next((p for p in descendants(stack.up.pid) if " scorer --config" in cmdline(p) and p != scorer), None)

    await wait_for("a new scoring worker", restarted, timeout=10)
    assert re.search(r"scorer exited \(signal 9\) after [\d.]+ s; restart #1 in 0\.5 s", stack.output())
    # The new worker scores: a load change still reaches the snapshots.
    await stack.engine_admin(stack.members[1], "/metrics", {"waiting": 7})

    async def rescored() -> bool:
        ms = {f"{m['ip']}:{m['port']}": m for m in (await stack.status()).get("members", [])}
        return (ms.get(stack.members[1], {}).get("metrics") or {}).get("waiting_queue") == 7

    await wait_for("a snapshot from the restarted worker", rescored, timeout=10)


def quick_failure_delays(child, times: int) -> list[float]:
    """Run `child` (a command that fails at once) `times` times; the restart delay `up` chose after each run."""
    from loguru import logger

    delays = []
    for _ in range(times):
        child.start(dict(os.environ), logger)
        child.proc.wait()
        child.reap(child.started_at + 0.1, logger)
        delays.append(child.restart_at - (child.started_at + 0.1))
    return delays


def test_restart_backoff_doubles_on_quick_failures_up_to_the_cap_and_resets_after_a_stable_run() -> None:
    from loguru import logger

    from llmsched.cli.up import BACKOFF_MAX_S, STABLE_AFTER_S, Child

    child = Child("failing", [sys.executable, "-c", "raise SystemExit(3)"])
    assert quick_failure_delays(child, 8) == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, BACKOFF_MAX_S, BACKOFF_MAX_S]
    child.start(dict(os.environ), logger)
    child.proc.wait()
    child.reap(child.started_at + STABLE_AFTER_S + 1, logger)
    assert child.restart_at - (child.started_at + STABLE_AFTER_S + 1) == 0.5


def test_invalid_config_is_reported_with_key_paths_and_nothing_is_started(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "f5": {"host": "127.0.0.1", "password_env": "TEST_F5_PW"},
                "scheduler": {"metrics_fetch_interval": 0},
                "pools": [{"name": "p", "engine_type": "xinference2"}],
            }
        )
    )
    env = {**os.environ, "TEST_F5_PW": "pw", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "llmsched.cli.main", "up", "--config", str(config)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "pools[0].engine_type:" in done.stderr and "scheduler.metrics_fetch_interval:" in done.stderr
    assert "started" not in done.stderr + done.stdout


def test_a_crash_looping_scorer_or_scraper_is_restarted_within_a_third_of_stale_after() -> None:

    from llmsched.cli.up import BACKOFF_MAX_S, cap_freshness_backoff, child_commands

    children = child_commands("c.yaml", 1, 2, {"poller", "scraper", "scorer", "api"})
    cap_freshness_backoff(children, stale_after=3.0)
    assert {c.name: c.backoff_max for c in children} == {
        "poller": BACKOFF_MAX_S,  # BIG-IP may lock an account that logs in too often: the poller keeps its backoff
        "scraper": 1.0,
        "scorer-1": 1.0,
        "scorer-2": 1.0,
        "api": BACKOFF_MAX_S,
    }
    scorer = children[2]
    scorer.argv = [sys.executable, "-c", "raise SystemExit(3)"]
    assert quick_failure_delays(scorer, 6) == [0.5, 1.0, 1.0, 1.0, 1.0, 1.0]


def test_scrapers_n_starts_n_scraper_children_and_ha_alone_starts_two() -> None:
    roles = {"poller", "scraper", "scorer", "api"}

    def names(**kw: object) -> list[str]:
        return [c.name for c in child_commands("c.yaml", 2, 1, roles, **kw)]  # type: ignore[arg-type]

    assert names() == ["poller", "scraper", "scorer", "api"]
    assert names(scrapers=3) == ["poller", "scraper-1", "scraper-2", "scraper-3", "scorer", "api"]
    assert names(ha=True) == ["poller-1", "poller-2", "scraper-1", "scraper-2", "scorer", "api"]
    assert names(ha=True, scrapers=4)[:6] == [
        "poller-1",
        "poller-2",
        "scraper-1",
        "scraper-2",
        "scraper-3",
        "scraper-4",
    ]
    scraper = next(c for c in child_commands("c.yaml", 2, 1, roles, scrapers=2) if c.name == "scraper-2")
    assert scraper.argv[-3:] == ["scraper", "--config", "c.yaml"]
