"""A quick Sentinel failover that `make test` runs: one master, one replica and one Sentinel (quorum 1), real
redis-server processes on 127.0.0.1. The decision API is connected through the Sentinel only (the way
`redis.sentinels` + `redis.master_name` configure it); the master is killed with SIGKILL, Sentinel promotes the
replica, and the same API process picks members again from the new master without a restart. The thorough
version with the whole stack and three Sentinels is tests/shared/test_sentinel.py (make test-faults)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from llmsched.api.app import create_app
from llmsched.shared.errors import StoreError
from llmsched.shared.redis_conn import RedisTarget, client_for
from llmsched.shared.store import Store

from tests.helpers import seed
from tests.shared.redis_servers import RedisProc
from tests.shared.test_sentinel import MASTER, Replicated, wait

M = {"waiting_queue": 0.0, "cache_usage": 0.2, "running_req": 1.0}
MEMBERS = ["10.0.0.1:8000", "10.0.0.2:8000"]
BODY = {"pool_name": "p1", "partition": "Common", "members": MEMBERS}


@pytest.fixture()
def one_sentinel() -> Iterator[Replicated]:
    master = RedisProc().start()
    everything = [master]
    try:
        replica = RedisProc(replica_of=master.port).start()
        everything.append(replica)
        wait("the replica to sync", lambda: replica.client().info("replication").get("master_link_status") == "up")
        sentinel = RedisProc(sentinel_of=(MASTER, master.port), quorum=1).start()
        everything.append(sentinel)
        wait(
            "the sentinel to find the replica",
            lambda: len(sentinel.client().execute_command("SENTINEL", "REPLICAS", MASTER)) == 1,
        )
        yield Replicated(master, replica, [sentinel])
    finally:
        for proc in everything:
            proc.close()


def test_the_api_follows_a_sentinel_failover_to_the_promoted_replica(one_sentinel: Replicated) -> None:
    target = RedisTarget(sentinels=(("127.0.0.1", one_sentinel.sentinels[0].port),), master_name=MASTER)
    store = Store(client_for(target, socket_timeout=1.0))
    client = create_app(store, rng=random.Random(3)).test_client()
    seed(store, {m: M for m in MEMBERS})
    # The pool reached the replica before the master dies (WAIT: acknowledged by one replica).
    assert one_sentinel.master.client().execute_command("WAIT", 1, 5000) == 1
    assert client.post("/scheduler/select", json=BODY).text in MEMBERS

    one_sentinel.master.kill()
    wait("Sentinel to promote the replica", lambda: one_sentinel.master_port() == one_sentinel.replica.port)
    # Decisions never wait on Redis: the API answers from its last snapshot while the master is gone.
    assert client.post("/scheduler/select", json=BODY).text in MEMBERS
    assert one_sentinel.replica.client().info("replication")["role"] == "master"
    # A write through the Sentinel reaches the promoted replica once the Sentinel reports it as a healthy master
    # (its flags settle a moment after the promotion); 30 s is a bound on waiting, not a measured figure.
    wait("a write through the Sentinel to succeed", lambda: _seeded(store, {"10.0.0.3:8000": M}), timeout=30)
    # The API's background reload follows the failover too: it sees the pool written to the new master.
    body = {**BODY, "members": ["10.0.0.3:8000"]}
    wait(
        "the API to pick from the new master",
        lambda: client.post("/scheduler/select", json=body).text == "10.0.0.3:8000",
        timeout=30,
    )


def _seeded(store: Store, members: dict[str, dict]) -> bool:
    try:
        seed(store, members)
    except StoreError:
        return False
    return True
