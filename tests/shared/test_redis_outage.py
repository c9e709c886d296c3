"""The API's side of a Redis outage, in process against a redis-server the test owns: the API store's short
timeout and its circuit breaker (llmsched.shared.redis_conn.Breaker, shown here through Store.decision_inputs; the
API's background reloads and herd-count exchanges go through the same breaker), and where an API process finds
Redis (`llmsched.api.app.store_from_env`). End-to-end figures under `llmsched up` are in tests/faults."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis
from loguru import logger

from llmsched.api.app import store_from_env
from llmsched.shared.errors import StoreError
from llmsched.shared.redis_conn import RedisUnavailable, client_from_settings, parse_sentinels, target_from_env
from llmsched.shared.store import Store

from tests.helpers import make_store, seed
from tests.shared.redis_servers import RedisProc

POOL = "p1:Common"
MEMBERS = {"10.0.0.1:8000": {"waiting_queue": 0.0, "cache_usage": 0.1, "running_req": 1.0}}


@pytest.fixture()
def server() -> Iterator[RedisProc]:
    proc = RedisProc().start()
    yield proc
    proc.close()


@pytest.fixture()
def lines() -> Iterator[list[str]]:
    captured: list[str] = []
    sink = logger.add(lambda m: captured.append(str(m)), level="INFO", format="{level} {message}")
    yield captured
    logger.remove(sink)


def api_store(server: RedisProc) -> Store:
    seed(make_store(server.url), MEMBERS)
    store = store_from_env({"REDIS_URL": server.url})
    assert store.decision_inputs(POOL)[0] is not None
    return store


def read_for(store: Store, seconds: float) -> tuple[int, int]:
    """Decision reads for `seconds`: (reads that tried Redis and failed, reads the open breaker refused)."""
    tried = refused = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            store.decision_inputs(POOL)
        except RedisUnavailable:
            refused += 1
        except StoreError:
            tried += 1
        time.sleep(0.001)
    return tried, refused


def wait_for_read(store: Store, timeout: float = 2.0) -> float:
    started = time.monotonic()
    while True:
        try:
            store.decision_inputs(POOL)
            return time.monotonic() - started
        except StoreError:
            assert time.monotonic() - started < timeout, "decisions did not read Redis again"
            time.sleep(0.005)


def test_a_paused_redis_costs_one_timeout_per_cooldown_not_one_per_decision(server: RedisProc) -> None:
    store = api_store(server)
    server.pause()
    try:
        tried, refused = read_for(store, 1.0)
    finally:
        server.resume()
    # Two failures open the breaker, then one probe after 50, 100, 200 ms and every 250 ms: about 7 in 1 s
    # (without the breaker, all ~90 reads of that second would wait for the timeout).
    print(f"\npaused Redis, 1 s of decision reads: {tried} waited for the 10 ms timeout, {refused} refused at once")
    assert 2 <= tried <= 10 and refused > 10 * tried
    back = wait_for_read(store)
    print(f"decisions read Redis again {back * 1000:.0f} ms after SIGCONT")


def test_a_stopped_redis_opens_the_breaker_and_a_restarted_one_closes_it(server: RedisProc) -> None:
    store = api_store(server)
    server.kill()
    tried, refused = read_for(store, 0.3)
    assert store.breaker.is_open and tried >= 2 and refused > 0
    server.start()
    wait_for_read(store)
    assert not store.breaker.is_open


def test_the_outage_is_logged_once_when_it_starts_and_once_when_it_ends(server: RedisProc, lines: list[str]) -> None:
    store = api_store(server)
    server.pause()
    try:
        read_for(store, 0.6)
    finally:
        server.resume()
    wait_for_read(store)
    read_for(store, 0.1)
    assert len([m for m in lines if "Redis unavailable" in m]) == 1, lines
    assert len([m for m in lines if "Redis reachable again" in m]) == 1, lines


def test_a_single_late_reply_does_not_open_the_breaker(server: RedisProc) -> None:
    store = api_store(server)
    blocker = threading.Thread(target=lambda: server.client(2).execute_command("DEBUG", "SLEEP", "0.4"))
    blocker.start()
    time.sleep(0.02)
    with pytest.raises(StoreError):  # this one read waits for the busy Redis and times out
        store.decision_inputs(POOL)
    blocker.join()
    assert not store.breaker.is_open
    assert store.decision_inputs(POOL)[0] is not None


def test_an_error_reply_from_redis_leaves_the_breaker_closed(server: RedisProc) -> None:
    store = api_store(server)
    client = server.client()
    client.delete(store.keys.pool_scores(POOL))
    client.hset(store.keys.pool_scores(POOL), "x", "1")  # the script's GET on a hash: WRONGTYPE
    for _ in range(3):
        with pytest.raises(StoreError, match="WRONGTYPE"):
            store.decision_inputs(POOL)
    assert not store.breaker.is_open


def test_the_api_finds_redis_in_its_environment_and_names_a_bad_variable() -> None:
    assert target_from_env({}).url == "redis://127.0.0.1:6379/0"
    assert target_from_env({"REDIS_URL": "redis://r:1/0", "LLMSCHED_REDIS_SENTINELS": "s:1"}).url == "redis://r:1/0"
    sentinel = target_from_env(
        {"LLMSCHED_REDIS_SENTINELS": "10.0.0.1:26379, [::1]:26380", "LLMSCHED_REDIS_MASTER": "mymaster"}
    )
    assert (sentinel.sentinels, sentinel.master_name) == ((("10.0.0.1", 26379), ("::1", 26380)), "mymaster")
    assert sentinel.env() == {
        "LLMSCHED_REDIS_SENTINELS": "10.0.0.1:26379,[::1]:26380",
        "LLMSCHED_REDIS_MASTER": "mymaster",
    }
    with pytest.raises(ValueError, match="LLMSCHED_REDIS_MASTER"):
        target_from_env({"LLMSCHED_REDIS_SENTINELS": "10.0.0.1:26379"})
    with pytest.raises(ValueError, match="LLMSCHED_REDIS_SENTINELS: 'nohost' is not"):
        parse_sentinels("10.0.0.1:26379,nohost")
    with pytest.raises(ValueError, match="LLMSCHED_REDIS_TIMEOUT: 'fast' is not a number"):
        store_from_env({"LLMSCHED_REDIS_TIMEOUT": "fast"})
    with pytest.raises(ValueError, match="redis.sentinels and redis.master_name"):
        client_from_settings(None, (), None)


def test_the_api_store_times_out_within_250_ms_or_its_longer_timeout_and_never_retries(server: RedisProc) -> None:
    # No decision waits for this store (decisions use the worker's in-memory copy), so a short decision timeout
    # is raised to 250 ms: a busy host must not fail the background reloads.
    store = store_from_env({"REDIS_URL": server.url, "LLMSCHED_REDIS_TIMEOUT": "0.02"})
    kwargs = store.client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 0.25 and kwargs["socket_connect_timeout"] == 0.25
    slow = store_from_env({"REDIS_URL": server.url, "LLMSCHED_REDIS_TIMEOUT": "0.5"})
    assert slow.client.connection_pool.connection_kwargs["socket_timeout"] == 0.5
    connection = store.client.connection_pool.make_connection()
    assert connection.retry.get_retries() == 0
    assert isinstance(store.client, redis.Redis)
