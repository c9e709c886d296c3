"""Redis Sentinel: a master, a replica and three Sentinels on 127.0.0.1 (down-after 1 s, failover-timeout 3 s), and
the whole scheduler (`llmsched up`: poller, scraper, scorer, API) configured with `redis.sentinels` +
`redis.master_name` only. The master is killed with SIGKILL; Sentinel promotes the replica; every process finds
the new master through the Sentinels by itself, and decisions pick members again. The gap is measured."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.collectors.up_stack import up_stack
from tests.shared.redis_servers import RedisProc

MASTER = "mymaster"
RESUME_LIMIT_S = 20.0


@dataclass
class Replicated:
    master: RedisProc
    replica: RedisProc
    sentinels: list[RedisProc]

    def config(self) -> dict:
        return {"sentinels": [f"127.0.0.1:{s.port}" for s in self.sentinels], "master_name": MASTER}

    def master_port(self) -> int:
        host, port = self.sentinels[0].client().execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
        return int(port)


def wait(what: str, check: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture()
def replicated() -> Iterator[Replicated]:
    master = RedisProc().start()
    replica = RedisProc(replica_of=master.port).start()
    everything = [master, replica]
    try:
        wait("the replica to sync", lambda: replica.client().info("replication").get("master_link_status") == "up")
        sentinels = [RedisProc(sentinel_of=(MASTER, master.port)).start() for _ in range(3)]
        everything += sentinels
        # A failover needs each Sentinel to know the replica and the two other Sentinels (hello messages, ~2 s).
        wait(
            "the sentinels to find each other and the replica",
            lambda: all(
                len(s.client().execute_command("SENTINEL", "SENTINELS", MASTER)) == 2
                and len(s.client().execute_command("SENTINEL", "REPLICAS", MASTER)) == 1
                for s in sentinels
            ),
        )
        yield Replicated(master, replica, sentinels)
    finally:
        for proc in everything:
            proc.close()


@pytest.mark.faults
async def test_decisions_resume_after_the_master_is_killed_and_sentinel_fails_over(
    tmp_path: Path, replicated: Replicated
) -> None:
    async with up_stack(tmp_path, replicated.config()) as stack:
        assert "Redis sentinel master 'mymaster' via 127.0.0.1:" in stack.output()
        assert await stack.select() in stack.members
        replicated.master.kill()
        killed = time.monotonic()
        answers: list[tuple[float, str]] = []
        while time.monotonic() - killed < RESUME_LIMIT_S:
            answers.append((time.monotonic() - killed, await stack.select()))
            if answers[-1][1] in stack.members and any(a in ("none", "") for _, a in answers):
                break
            await asyncio.sleep(0.01)
        promoted = await asyncio.to_thread(replicated.master_port)
        gap = answers[-1][0]
        nones = [t for t, a in answers if a == "none"]
        print(
            f"\nSentinel failover: decisions picked members again {gap:.2f} s after the master was killed "
            f"(answered `none` from {nones[0] if nones else 0:.2f} s; every select answered HTTP 200: "
            f"{all(a for _, a in answers)}); new master port {promoted} (replica {replicated.replica.port})"
        )
        assert promoted == replicated.replica.port
        assert answers[-1][1] in stack.members, f"no member picked {RESUME_LIMIT_S} s after the failover"
        assert all(a for _, a in answers), "the API must answer (none) throughout the failover"
        # Every process follows the new master without a restart by `up`.
        assert " exited (" not in stack.output()
        picks = {await stack.select() for _ in range(30)}
        assert picks <= set(stack.members)
    assert stack.exit_code == 0
