"""The poller against the BIG-IP emulator (real HTTPS on 127.0.0.1) and a real Redis."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from llmsched.collectors.f5_client import F5Client
from llmsched.collectors.poller import Poller
from llmsched.shared.config_model import Config, PoolConfig, SchedulerConfig
from llmsched.shared.scoring_queue import clear_pending, scoring_queue
from llmsched.shared.store import Store

from tests.collectors.conftest import F5_PASSWORD, BigIP, ManualClock
from tests.conftest import free_port
from tests.helpers import make_store

ROOT = Path(__file__).resolve().parents[2]
VLLM = PoolConfig(name="vllm_pool", engine_type="vllm")
V6 = PoolConfig(name="v6_pool", partition="TEST2", engine_type="vllm")
SUBFOLDER = PoolConfig(name="myapp.app/pool", engine_type="sglang")
MISSING = PoolConfig(name="nope", engine_type="vllm")


def make_config(bigip: BigIP, *pools: PoolConfig, **f5: object) -> Config:
    return Config(
        f5=bigip.f5_config(**f5),
        pools=pools or (VLLM,),
        source="test",
        scheduler=SchedulerConfig(pool_fetch_interval=0.2),
    )


def make_poller(config: Config, store: Store, clock: ManualClock) -> Poller:
    return Poller(config, store, client_factory=lambda c: F5Client(c.f5), clock=clock)


def statuses(doc: dict) -> dict[str, str]:
    return {m["id"]: m["status"] for m in doc["members"]}


def queued(store: Store) -> int:
    return scoring_queue(store).count


# --- normal operation ------------------------------------------------------------------------------------------
async def test_first_poll_writes_every_pool_and_publishes_the_config(
    bigip: BigIP, redis_url: str, clock: ManualClock
) -> None:
    store = make_store(redis_url)
    poller = make_poller(make_config(bigip, VLLM, V6, SUBFOLDER), store, clock)
    try:
        assert await poller.poll_once() == {VLLM.key: None, V6.key: None, SUBFOLDER.key: None}
    finally:
        await poller.close()
    assert store.pool_keys() == [VLLM.key, V6.key, SUBFOLDER.key]
    doc = store.members(VLLM.key)
    assert doc["fetched_at"] == clock.now and doc["error"] is None and doc["error_at"] is None
    assert statuses(doc) == {"10.0.0.1:8000": "enabled", "10.0.0.2:8000": "enabled", "10.0.0.3:8000": "enabled"}
    v6 = {m["id"]: m for m in store.members(V6.key)["members"]}
    assert v6["2.3.2.2%30:8080"]["address"] == "2.3.2.2%30" and "2001:db8::1:80" in v6
    assert [m["id"] for m in store.members(SUBFOLDER.key)["members"]] == ["10.9.9.9:80"]


async def test_member_disabled_on_bigip_is_written_and_triggers_a_scoring_job(
    bigip: BigIP, redis_url: str, clock: ManualClock
) -> None:
    store = make_store(redis_url)
    poller = make_poller(make_config(bigip), store, clock)
    try:
        await poller.poll_once()
        assert queued(store) == 1  # a new membership is a change
        clear_pending(store, VLLM.key)  # as the scoring worker does when it takes the job
        clock.advance(10)
        await poller.poll_once()
        assert queued(store) == 1, "an unchanged membership enqueues nothing"
        await bigip.set_member("vllm_pool", "10.0.0.2:8000", "disabled")
        await bigip.set_member("vllm_pool", "10.0.0.3:8000", "forced_offline")
        clock.advance(10)
        await poller.poll_once()
        assert queued(store) == 2
        job = scoring_queue(store).jobs[-1]
        assert job.func_name == "llmsched.scorer.jobs.score_pool_job" and job.args[0] == VLLM.key
        assert job.args[2] == "membership"
        assert statuses(store.members(VLLM.key)) == {
            "10.0.0.1:8000": "enabled",
            "10.0.0.2:8000": "disabled",
            "10.0.0.3:8000": "forced_offline",
        }
        clear_pending(store, VLLM.key)
        await bigip.set_member("vllm_pool", "10.0.0.1:8000", "monitor_down")
        await bigip.admin("DELETE", "/pools/vllm_pool/members/10.0.0.2:8000")
        clock.advance(10)
        await poller.poll_once()
        assert queued(store) == 3
        assert statuses(store.members(VLLM.key)) == {"10.0.0.1:8000": "down", "10.0.0.3:8000": "forced_offline"}
    finally:
        await poller.close()


# --- failures keep the last membership -------------------------------------------------------------------------
async def test_bigip_down_keeps_the_last_membership_with_error_and_its_age(
    bigip: BigIP, redis_url: str, clock: ManualClock, logs: list[str]
) -> None:
    store = make_store(redis_url)
    poller = make_poller(make_config(bigip), store, clock)
    try:
        await poller.poll_once()
        fetched_at = clock.now
        before = store.members(VLLM.key)["members"]
        await bigip.stop()  # connection refused from now on
        for _ in range(3):
            clock.advance(10)
            result = await poller.poll_once()
    finally:
        await poller.close()
    doc = store.members(VLLM.key)
    assert doc["members"] == before and doc["fetched_at"] == fetched_at
    assert doc["error_at"] == clock.now and doc["error_at"] - doc["fetched_at"] == 30
    assert "Cannot connect" in doc["error"] and result[VLLM.key] == doc["error"]
    assert store.pool_keys() == [VLLM.key]
    assert sum("keeping the last known membership" in line for line in logs) == 1, "logged once, not per cycle"


@pytest.mark.parametrize("status", [500, 503])
async def test_bigip_5xx_keeps_the_last_membership_and_recovers(
    bigip: BigIP, redis_url: str, clock: ManualClock, logs: list[str], status: int
) -> None:
    store = make_store(redis_url)
    poller = make_poller(make_config(bigip), store, clock)
    try:
        await poller.poll_once()
        before = store.members(VLLM.key)
        await bigip.admin("POST", "/faults", {"fail_next": 1, "status": status, "path_prefix": "/mgmt/tm"})
        clock.advance(10)
        await poller.poll_once()
        doc = store.members(VLLM.key)
        assert doc["members"] == before["members"] and doc["fetched_at"] == before["fetched_at"]
        assert f"HTTP {status}" in doc["error"]
        clock.advance(10)
        await poller.poll_once()
    finally:
        await poller.close()
    doc = store.members(VLLM.key)
    assert doc["error"] is None and doc["fetched_at"] == clock.now
    assert any("read again after 1 failed poll(s)" in line for line in logs)


async def test_slow_bigip_keeps_the_last_membership(bigip: BigIP, redis_url: str, clock: ManualClock) -> None:
    store = make_store(redis_url)
    config = make_config(bigip)
    poller = make_poller(replace(config, f5=replace(config.f5, timeout=0.3)), store, clock)
    try:
        await poller.poll_once()
        await bigip.admin("POST", "/faults", {"latency": 2.0})
        clock.advance(10)
        await poller.poll_once()
    finally:
        await bigip.admin("DELETE", "/faults")
        await poller.close()
    doc = store.members(VLLM.key)
    assert len(doc["members"]) == 3 and "no answer" in doc["error"] and doc["error_at"] == clock.now


async def test_missing_pool_is_reported_clearly_once_and_other_pools_still_update(
    bigip: BigIP, redis_url: str, clock: ManualClock, logs: list[str]
) -> None:
    store = make_store(redis_url)
    poller = make_poller(make_config(bigip, VLLM, MISSING), store, clock)
    try:
        for _ in range(3):
            result = await poller.poll_once()
            clock.advance(10)
    finally:
        await poller.close()
    assert result == {VLLM.key: None, MISSING.key: "pool /Common/nope does not exist on BIG-IP"}
    doc = store.members(MISSING.key)
    assert doc["members"] == [] and doc["fetched_at"] is None and doc["error"] == result[MISSING.key]
    assert len(store.members(VLLM.key)["members"]) == 3
    warned = [line for line in logs if "does not exist on BIG-IP" in line]
    assert len(warned) == 1 and warned[0].startswith("WARNING")


async def test_pool_deleted_on_bigip_keeps_its_last_members_with_the_error(
    bigip: BigIP, redis_url: str, clock: ManualClock
) -> None:
    store = make_store(redis_url)
    poller = make_poller(make_config(bigip), store, clock)
    try:
        await poller.poll_once()
        await bigip.admin("DELETE", "/pools/vllm_pool")
        clock.advance(10)
        await poller.poll_once()
    finally:
        await poller.close()
    doc = store.members(VLLM.key)
    assert len(doc["members"]) == 3 and doc["error"] == "pool /Common/vllm_pool does not exist on BIG-IP"


async def test_changed_password_keeps_the_membership_and_tries_one_login_per_cycle(
    bigip: BigIP, redis_url: str, clock: ManualClock
) -> None:
    store = make_store(redis_url)
    poller = make_poller(make_config(bigip, VLLM, V6, SUBFOLDER), store, clock)
    try:
        await poller.poll_once()
        await bigip.admin("POST", "/users", {"username": "admin", "password": "rotated"})
        await bigip.admin("POST", "/tokens/revoke", {})
        attempts = poller.client.login_attempts
        for _ in range(3):
            clock.advance(10)
            result = await poller.poll_once()
        assert poller.client.login_attempts == attempts + 3
    finally:
        await poller.close()
    for pool in (VLLM, V6, SUBFOLDER):
        doc = store.members(pool.key)
        assert doc["members"] and doc["error"] == result[pool.key]
        assert "login of user 'admin'" in doc["error"] and "HTTP 401" in doc["error"]


async def test_restart_while_bigip_is_down_keeps_the_membership_an_earlier_run_wrote(
    bigip: BigIP, redis_url: str, clock: ManualClock
) -> None:
    store = make_store(redis_url)
    config = make_config(bigip)
    first = make_poller(config, store, clock)
    try:
        await first.poll_once()
    finally:
        await first.close()
    written = store.members(VLLM.key)
    await bigip.stop()
    clock.advance(60)
    second = make_poller(config, store, clock)
    try:
        await second.poll_once()
    finally:
        await second.close()
    doc = store.members(VLLM.key)
    assert doc["members"] == written["members"] and doc["fetched_at"] == written["fetched_at"]
    assert doc["error"] and doc["error_at"] == clock.now


# --- Redis outage ----------------------------------------------------------------------------------------------
class RedisProcess:
    """A private redis-server that a test can stop and start again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="llmsched-poller-redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


async def test_redis_outage_is_logged_once_and_the_poller_catches_up_when_it_returns(
    bigip: BigIP, redis_server: str, clock: ManualClock, logs: list[str]
) -> None:
    server = RedisProcess()
    store = make_store(server.url)
    poller = make_poller(make_config(bigip), store, clock)
    try:
        for _ in range(2):  # Redis not started yet: nothing to write, no crash
            assert await poller.poll_once() == {VLLM.key: None}
        assert sum("Redis unavailable" in line for line in logs) == 1
        server.start()
        clock.advance(10)
        await poller.poll_once()
        assert store.pool_keys() == [VLLM.key], "the config is published once Redis is back"
        assert store.members(VLLM.key)["fetched_at"] == clock.now and queued(store) == 1
        assert any("Redis reachable again" in line for line in logs)
    finally:
        await poller.close()
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


# --- reload and shutdown ---------------------------------------------------------------------------------------
async def test_apply_config_adds_pools_and_replaces_the_client_when_f5_settings_change(
    bigip: BigIP, redis_url: str, clock: ManualClock
) -> None:
    store = make_store(redis_url)
    config = make_config(bigip)
    poller = make_poller(config, store, clock)
    try:
        await poller.poll_once()
        old_client, old_tokens = poller.client, set(bigip.state.tokens)
        poller.apply_config(replace(config, pools=(VLLM, V6), f5=replace(config.f5, timeout=5.0)))
        assert await poller.poll_once() == {VLLM.key: None, V6.key: None}
        assert poller.client is not old_client and old_client.closed
        assert not old_tokens & set(bigip.state.tokens), "the old client's token is deleted"
        assert store.pool_keys() == [VLLM.key, V6.key]
        poller.apply_config(replace(config, pools=(V6,), f5=replace(config.f5, timeout=5.0)))
        assert await poller.poll_once() == {V6.key: None}
        assert store.pool_keys() == [V6.key] and store.members(VLLM.key) is None
    finally:
        await poller.close()


async def test_run_polls_at_once_and_stops_on_request_deleting_its_token(bigip: BigIP, redis_url: str) -> None:
    store = make_store(redis_url)
    poller = Poller(make_config(bigip), store)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    deadline = time.monotonic() + 10
    while poller.cycles < 3:  # interval 0.2 s: several cycles
        assert time.monotonic() < deadline and not task.done()
        await asyncio.sleep(0.05)
    assert store.members(VLLM.key)["error"] is None and bigip.state.tokens
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert bigip.state.tokens == {}


async def test_stop_during_a_hanging_bigip_call_ends_run_within_five_seconds(bigip: BigIP, redis_url: str) -> None:
    store = make_store(redis_url)
    config = make_config(bigip)
    poller = Poller(replace(config, f5=replace(config.f5, timeout=30.0)), store)
    await bigip.admin("POST", "/faults", {"latency": 20.0})
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    await asyncio.sleep(0.3)  # the login is now waiting on the slow BIG-IP
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert task.exception() is None


# --- the command -----------------------------------------------------------------------------------------------
POLLER_MAIN = (
    "import argparse, sys; import llmsched.cli.poller as m; p = argparse.ArgumentParser(); m.add_arguments(p); "
    "sys.exit(m.run(p.parse_args(sys.argv[1:])))"
)


def write_config(path: Path, bigip: BigIP, redis_url: str) -> None:
    path.write_text(f"""
global: {{log_level: DEBUG, interval: 60}}
f5: {{host: 127.0.0.1, port: {bigip.port}, username: admin, password_env: TEST_F5_PW, ca_bundle: {bigip.cert}}}
redis: {{url: "{redis_url}"}}
scheduler: {{pool_fetch_interval: 0.3}}
pools:
  - {{name: vllm_pool, engine_type: vllm}}
  - {{name: v6_pool, partition: TEST2, engine_type: auto}}
""")


async def test_command_polls_logs_no_secret_and_exits_0_on_sigterm_after_deleting_its_token(
    bigip: BigIP, redis_url: str, tmp_path: Path
) -> None:
    cfg = tmp_path / "scheduler-config.yaml"
    write_config(cfg, bigip, redis_url)
    env = {**os.environ, "TEST_F5_PW": F5_PASSWORD, "PYTHONPATH": str(ROOT)}
    env.pop("REDIS_URL", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", POLLER_MAIN, "--config", str(cfg), cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE
    )
    store = make_store(redis_url)
    tokens: set[str] = set()
    deadline = time.monotonic() + 15
    while not (store.members(VLLM.key) and store.members(V6.key)):
        assert time.monotonic() < deadline and proc.returncode is None, "the poller wrote no membership"
        tokens |= bigip.token_values()
        await asyncio.sleep(0.05)
    tokens |= bigip.token_values()
    proc.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(proc.communicate(), timeout=5)
    text = stderr.decode()
    assert proc.returncode == 0, text
    assert tokens and bigip.state.tokens == {}, "token deleted on exit"
    assert "logged in to BIG-IP" in text and "deleted BIG-IP token" in text and "poller stopped" in text
    assert F5_PASSWORD not in text and not any(t in text for t in tokens)


def test_command_prints_config_errors_with_their_path_and_exits_1(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("f5: {host: 127.0.0.1, password_env: UNSET_F5_PW_FOR_TEST}\npools: []\n")
    env = {k: v for k, v in os.environ.items() if k != "UNSET_F5_PW_FOR_TEST"}
    done = subprocess.run(
        [sys.executable, "-c", POLLER_MAIN, "--config", str(cfg)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"{cfg}: f5.password_env:" in done.stderr and "pools" in done.stderr
