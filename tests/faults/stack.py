"""`llmsched up` against the emulators and a Redis of the test's own, and a `Stack` to talk to it like BIG-IP
and an operator do."""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import free_port
from tests.faults.emulated import PARTITION, POOL, BigIP, Engine
from tests.faults.harness import Process, Reply, child_env, child_pid, http, wait_for
from tests.faults.redis_ctl import RedisServer
from tests.shared.redis_servers import RedisProc

F5_PASSWORD_ENV = "FAULTS_F5_PW"
RESTART_LINE = re.compile(r" - (\S+) exited \((code -?\d+|signal \d+)\) after")


# --- the whole scheduler under `llmsched up` ---------------------------------------------------------------------
def scheduler_config(
    bigip: BigIP,
    redis_url: str | None,
    api_port: int,
    pools: dict[str, dict],
    *,
    fetch_s: float = 0.5,
    scrape_ms: int = 500,
    watch_s: float = 0.5,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A scheduler-config document; `pools` maps a pool name to its `metrics` section (timeout and auth)."""
    doc: dict[str, Any] = {
        "global": {"interval": watch_s, "api_host": "127.0.0.1", "api_port": api_port, "log_level": "INFO"},
        "f5": {
            "host": "127.0.0.1",
            "port": bigip.port,
            "username": "admin",
            "password_env": F5_PASSWORD_ENV,
            "ca_bundle": bigip.cert,
            "timeout": 1.0,
        },
        "redis": {"url": redis_url} if redis_url else {},
        "scheduler": {"pool_fetch_interval": fetch_s, "metrics_fetch_interval": scrape_ms},
        "modes": [{"name": "s1", "w_a": 0.5, "w_b": 0.5}],
        "pools": [
            {"name": name, "partition": PARTITION, "engine_type": "vllm", "metrics": {"timeout": 0.25, **metrics}}
            for name, metrics in pools.items()
        ],
    }
    for section, values in (extra or {}).items():
        doc[section] = {**doc.get(section, {}), **values} if isinstance(values, dict) else values
    return doc


@dataclass
class Stack:
    """`llmsched up` with its BIG-IP, engines and Redis; methods talk to it as BIG-IP and an operator would."""

    up: Process
    api: str
    config_path: Path
    bigip: BigIP
    engines: list[Engine]
    redis: RedisServer  # a RedisProc (the Sentinel master) in the failover test
    pools: list[str]

    @property
    def members(self) -> list[str]:
        return [e.member for e in self.engines]

    def select(self, members: list[str] | None = None, pool: str = POOL, timeout: float = 2.0) -> Reply:
        body = {"pool_name": pool, "partition": PARTITION, "members": members or self.members}
        return http("POST", f"{self.api}/scheduler/select", body, timeout=timeout)

    def picks(self, n: int, members: list[str] | None = None, pool: str = POOL) -> Counter[str]:
        answers: Counter[str] = Counter()
        for _ in range(n):
            reply = self.select(members, pool)
            assert reply.status == 200, reply.text
            answers[reply.text] += 1
        return answers

    def assert_picks(self, picks: Counter[str], allowed: list[str] | None = None) -> None:
        """Every answer is an allowed member: a healthy stack never answers `none` (decisions never wait for
        Redis; they use the API worker's in-memory snapshot)."""
        allowed = self.members if allowed is None else allowed
        assert set(picks) <= set(allowed), picks

    def deciding(self, allowed: list[str] | None = None, n: int = 10) -> Counter[str]:
        """Decisions pick members (`assert_picks` over `n` of them)."""
        picks = self.picks(n)
        self.assert_picks(picks, allowed)
        return picks

    def seconds_until_steady(self, limit: float, run: int = 60) -> float | None:
        """Seconds from now until decisions pick members steadily: the start of the first `run` member answers in
        a row, selects back to back (enough to reach every API worker, each deciding from its own in-memory copy).
        None if that did not happen within `limit` s."""
        started = time.monotonic()
        streak_from, streak = started, 0
        while time.monotonic() - started < limit:
            at = time.monotonic()
            try:
                picked = self.select(timeout=1.0).text in self.members
            except OSError:
                picked = False
            if not picked:
                streak = 0
            elif (streak := streak + 1) == 1:
                streak_from = at
            if streak >= run:
                return streak_from - started
            time.sleep(0.002)
        return None

    def status(self, pool: str = POOL) -> dict[str, Any]:
        """The pool's status view ({} while the pool is unknown). A 503 (the status read, like a decision, has a
        10 ms Redis budget) is retried: a test must never read a busy moment as "member not eligible"."""
        return self._get_json(f"/pools/{pool}/{PARTITION}/status") or {}

    def pools_status(self) -> list[dict[str, Any]]:
        return (self._get_json("/pools/status") or {}).get("pools", [])

    def _get_json(self, path: str, patience: float = 5.0) -> Any:
        deadline = time.monotonic() + patience
        while True:
            reply = http("GET", self.api + path, timeout=2.0)
            if reply.status == 200:
                return reply.json()
            if reply.status != 503 or time.monotonic() > deadline:
                return None
            time.sleep(0.01)

    def member_view(self, member: str, pool: str = POOL) -> dict[str, Any]:
        return next((m for m in self.status(pool).get("members", []) if f"{m['ip']}:{m['port']}" == member), {})

    def eligible(self, member: str, pool: str = POOL) -> bool:
        return bool(self.member_view(member, pool).get("eligible"))

    def all_eligible(self, pool: str = POOL, count: int | None = None) -> bool:
        members = self.status(pool).get("members", [])
        return len(members) == (count or len(self.engines)) and all(m["eligible"] for m in members)

    def output(self) -> str:
        return self.up.output()

    def restarts(self, since: int = 0) -> list[str]:
        """The `<child> exited (...)` lines `up` logged after byte offset `since` of its log."""
        return [f"{m.group(1)} {m.group(2)}" for m in RESTART_LINE.finditer(self.output()[since:])]

    def log_size(self) -> int:
        return len(self.output())

    def child(self, command: str) -> int:
        return child_pid(self.up.pid, command)


def write_config(
    tmp_path: Path,
    bigip: BigIP,
    redis_server: RedisProc,
    pools: dict[str, dict],
    sentinel: dict[str, Any] | None = None,
    **config: Any,
) -> tuple[Path, int]:
    """scheduler-config.yaml in `tmp_path` for these parts, with a free API port; (path, API port).

    With `sentinel` ({"sentinels": [...], "master_name": ...}) the config's `redis` section is that, not a URL."""
    api_port = free_port()
    path = tmp_path / "scheduler-config.yaml"
    if sentinel:
        config.setdefault("extra", {})["redis"] = dict(sentinel)
    doc = scheduler_config(bigip, None if sentinel else redis_server.url, api_port, pools, **config)
    path.write_text(yaml.safe_dump(doc))
    return path, api_port


def start_up(
    tmp_path: Path,
    bigip: BigIP,
    engines: list[Engine],
    redis_server: RedisProc,
    pools: dict[str, dict] | None = None,
    pool_members: dict[str, list[str]] | None = None,
    workers: int = 2,
    env: dict[str, str] | None = None,
    up_args: tuple[str, ...] = (),
    **config: Any,
) -> Stack:
    """Write the config, run `llmsched up` on it and wait until every member of every pool is eligible."""
    pools = pools or {POOL: {}}
    path, api_port = write_config(tmp_path, bigip, redis_server, pools, **config)
    up = Process(
        ["up", "--config", str(path), "--workers", str(workers), *up_args],
        tmp_path / "up.log",
        child_env(**{F5_PASSWORD_ENV: bigip.password, **(env or {})}),
    ).start()
    stack = Stack(up, f"http://127.0.0.1:{api_port}", path, bigip, engines, redis_server, list(pools))
    try:
        for pool in pools:
            count = len((pool_members or {}).get(pool, engines))
            wait_for(
                f"every member of {pool} to be eligible",
                lambda p=pool, c=count: stack.all_eligible(p, c),
                40,
                every=0.1,
            )
    except BaseException:
        stop_up(stack)
        raise
    return stack


def stop_up(stack: Stack) -> tuple[int | None, float]:
    if stack.up.proc is None or stack.up.proc.poll() is not None:
        return stack.up.proc.returncode if stack.up.proc else None, 0.0
    if getattr(stack.redis, "paused", False):
        stack.redis.resume()
    return stack.up.terminate(10)
