"""Leases in Redis (shared/lease.py): one holder per role, renewal, release, expiry, and the holder's own deadline."""

from __future__ import annotations

import asyncio
import re

import pytest
import redis

from llmsched.shared.keys import Keys
from llmsched.shared.lease import Lease, holder_id, keep
from llmsched.shared.redis_conn import client_from_settings

KEY = Keys().lease("poller")


class Clock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def lease(url: str, ttl: float = 3.0, clock=None, holder: str | None = None) -> Lease:
    client = redis.Redis.from_url(url, socket_timeout=1)
    return Lease(client, KEY, ttl, holder=holder, **({"clock": clock} if clock else {}))


def test_holder_ids_name_host_pid_and_a_random_part() -> None:
    first, second = holder_id(), holder_id()
    assert re.fullmatch(r"[^:]+:\d+:[0-9a-f]{6}", first) and first != second


def test_only_one_process_acquires_and_the_key_holds_its_id_with_the_ttl(redis_url: str) -> None:
    a, b = lease(redis_url), lease(redis_url)
    assert a.acquire() and a.held
    assert not b.acquire() and not b.held
    r = redis.Redis.from_url(redis_url)
    assert r.get(KEY).decode() == a.holder == b.owner()
    assert 2900 <= r.pttl(KEY) <= 3000


def test_renewal_extends_only_the_holders_lease(redis_url: str) -> None:
    a, b = lease(redis_url), lease(redis_url)
    a.acquire()
    r = redis.Redis.from_url(redis_url)
    r.pexpire(KEY, 500)
    assert a.renew() and r.pttl(KEY) > 2900
    assert not b.renew() and r.get(KEY).decode() == a.holder


def test_release_deletes_only_the_holders_lease_and_a_standby_takes_it_at_once(redis_url: str) -> None:
    a, b = lease(redis_url), lease(redis_url)
    a.acquire()
    assert not b.release() and b.owner() == a.holder
    assert a.release() and not a.held
    assert b.refresh() and b.owner() == b.holder


def test_an_expired_lease_goes_to_whoever_asks_next(redis_url: str) -> None:
    a, b = lease(redis_url, ttl=0.3), lease(redis_url, ttl=0.3)
    assert a.refresh() and not b.refresh()
    redis.Redis.from_url(redis_url).delete(KEY)  # what the TTL does when `a` stops renewing
    assert b.refresh() and b.held
    assert not a.refresh() and not a.held  # `a` learns at its next renewal that it lost


def test_the_holder_stops_at_its_own_deadline_without_asking_redis(redis_url: str) -> None:
    clock = Clock()
    a = lease(redis_url, ttl=3.0, clock=clock)
    a.acquire()
    clock.advance(2.9)
    assert a.held
    clock.advance(0.2)  # e.g. a long pause: no renewal for more than the TTL
    assert not a.held


def test_a_holder_takes_its_lease_back_when_redis_lost_the_key(redis_url: str) -> None:
    a, b = lease(redis_url), lease(redis_url)
    a.acquire()
    redis.Redis.from_url(redis_url).flushall()  # Redis restarted empty
    assert a.refresh() and a.owner() == a.holder
    assert not b.refresh()


def test_a_redis_error_reaches_the_caller_and_the_deadline_still_runs(redis_url: str) -> None:
    clock = Clock()
    a = lease(redis_url, clock=clock)
    a.acquire()
    a.client = client_from_settings("redis://127.0.0.1:1/0", socket_timeout=0.2)  # Redis unreachable
    a._renew = a.client.register_script("return 1")
    with pytest.raises(redis.ConnectionError):
        a.refresh()
    assert a.held
    clock.advance(3.1)
    assert not a.held


async def test_keepers_of_one_role_hold_it_one_at_a_time_and_hand_it_over_on_release(redis_url: str) -> None:
    a, b = lease(redis_url, ttl=0.6), lease(redis_url, ttl=0.6)
    changes: list[tuple[str, bool]] = []
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    task_a = asyncio.create_task(keep(a, "poller", stop_a, lambda held: changes.append(("a", held))))
    await asyncio.sleep(0.05)
    task_b = asyncio.create_task(keep(b, "poller", stop_b, lambda held: changes.append(("b", held))))
    for _ in range(10):  # over several renewals, never both
        await asyncio.sleep(0.1)
        assert a.held != b.held
    assert changes == [("a", True)]
    stop_a.set()
    await task_a  # releases
    for _ in range(250):  # b retries every ttl/3; on a loaded machine give it up to 5 s
        if b.held and len(changes) == 2:  # held, and its callback has run
            break
        await asyncio.sleep(0.02)
    assert b.held and changes == [("a", True), ("b", True)]
    stop_b.set()
    await task_b
    assert redis.Redis.from_url(redis_url).exists(KEY) == 0
