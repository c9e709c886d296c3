"""The Redis watchdog (llmsched.shared.watchdog): when a restore is due, and the rescore it asks for."""

from __future__ import annotations

import threading
import time

import redis
from loguru import logger
from rq import Queue

from llmsched.shared.config_model import Config, PoolConfig
from llmsched.shared.publish import publish_config
from llmsched.shared.redis_conn import client_from_settings
from llmsched.shared.scoring_queue import SERIALIZER
from llmsched.shared.store import Store
from llmsched.shared.watchdog import RedisWatchdog, rescore_now

from tests.helpers import make_store

CONFIG = Config(pools=(PoolConfig(name="p1", engine_type="vllm"),), source="test")


def test_no_restore_is_due_while_the_published_config_is_there(redis_url: str) -> None:
    store = make_store(redis_url)
    publish_config(store, CONFIG, "test")
    dog = RedisWatchdog(store, "test")
    assert [dog.probe() for _ in range(3)] == [None, None, None]


def test_an_empty_redis_is_noticed_by_the_missing_config_version(redis_url: str) -> None:
    store = make_store(redis_url)
    publish_config(store, CONFIG, "test")
    redis.Redis.from_url(redis_url).flushall()
    assert RedisWatchdog(store, "test").probe() == "empty"


def test_redis_answering_again_after_an_outage_is_a_reason_to_restore(redis_url: str) -> None:
    good = make_store(redis_url)
    publish_config(good, CONFIG, "test")
    dog = RedisWatchdog(Store(client_from_settings("redis://127.0.0.1:1/0", socket_timeout=0.2)), "test")
    assert dog.probe() is None  # unreachable: nothing to do yet, the outage is remembered
    dog.store = good
    assert dog.probe() == "back"
    assert dog.probe() is None


def test_a_failed_restore_is_tried_again_at_the_next_tick_and_logged_once(redis_url: str) -> None:
    store = make_store(redis_url)
    calls: list[str] = []
    stop = threading.Event()

    def restore(reason: str) -> bool:
        calls.append(reason)
        if len(calls) == 1:
            return False  # e.g. Redis failed again half-way
        publish_config(store, CONFIG, "test")
        return True

    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="INFO", format="{message}")
    dog = RedisWatchdog(store, "test", interval=0.02)
    thread = threading.Thread(target=dog.run_until, args=(stop, restore))
    thread.start()
    deadline = time.monotonic() + 2
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    stop.set()
    thread.join()
    logger.remove(sink)
    assert calls == ["empty", "empty"]  # the config is still missing after the failed attempt
    assert len([m for m in lines if "Redis has no published config" in m]) == 1


def test_rescore_now_enqueues_even_when_a_pending_flag_was_left_behind(redis_url: str) -> None:
    store = make_store(redis_url)
    # A flag whose job never reached the queue (Redis failed between the two writes) names no queued job.
    store.client.set(store.keys.pool_scoring_pending("p1:Common"), "1", ex=30)
    rescore_now(store, ["p1:Common"])
    jobs = Queue(store.keys.scoring_queue, connection=store.client, serializer=SERIALIZER).jobs
    assert [job.args[0] for job in jobs] == ["p1:Common"] and jobs[0].args[2] == "recovery"
