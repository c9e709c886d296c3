"""Dispatch counters in Redis, shared by every API replica (real gunicorn processes against a real Redis)."""

import http.client
import json
import time

import pytest
import redis

from tests.helpers import api_process, make_store, seed

STRONG = {"waiting_queue": 0.0, "cache_usage": 0.1, "running_req": 1.0}
WEAK = {"waiting_queue": 9.0, "cache_usage": 0.9, "running_req": 1.0}
DISPATCH = "llmsched:pool:{p1:Common}:dispatch"
BODY = {"pool_name": "p1", "partition": "Common", "members": ["10.0.0.1:8000", "10.0.0.2:8000"]}


def post(port: int, payload: dict) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", "/scheduler/select", json.dumps(payload), {"Content-Type": "application/json"})
    answer = conn.getresponse().read().decode()
    conn.close()
    return answer


@pytest.fixture()
def replicas(redis_url):
    with api_process(redis_url, workers=2) as first, api_process(redis_url, workers=2) as second:
        yield [first, second]


def wait_for_total(r: redis.Redis, expected: int) -> dict:
    deadline = time.monotonic() + 5
    while True:  # counts are written right after each answer is sent; give the last one a moment
        counts = {k.decode(): int(v) for k, v in r.hgetall(DISPATCH).items()}
        if sum(counts.values()) == expected or time.monotonic() > deadline:
            return counts
        time.sleep(0.02)


def test_every_decision_of_every_replica_is_counted_once(replicas, redis_url):
    store = make_store(redis_url)
    seed(store, {"10.0.0.1:8000": STRONG, "10.0.0.2:8000": WEAK})
    answers = [post(replicas[i % 2], BODY) for i in range(200)]
    counts = wait_for_total(redis.Redis.from_url(redis_url), 200)
    assert counts == {m: answers.count(m) for m in set(answers)}
    assert redis.Redis.from_url(redis_url).ttl(DISPATCH) > 0


def test_a_replica_picks_by_the_counts_of_another_replicas_decisions(replicas, redis_url):
    # Two equal members. Replica A is offered only the first one 20 times; once its counts reached Redis (each
    # worker sends its counts and reads every replica's totals every 10 ms), replica B, offered both, must favour
    # the second member until it has as many: with only its own counts it would alternate from the start.
    same = {"waiting_queue": 0.0, "cache_usage": 0.2, "running_req": 2.0}
    seed(make_store(redis_url), {"10.0.0.1:8000": same, "10.0.0.2:8000": same})
    only_first = {**BODY, "members": ["10.0.0.1:8000"]}
    assert {post(replicas[0], only_first) for _ in range(20)} == {"10.0.0.1:8000"}
    assert wait_for_total(redis.Redis.from_url(redis_url), 20) == {"10.0.0.1:8000": 20}
    time.sleep(1.0)  # B's workers read the totals on their next 10 ms tick; ample room on a loaded machine
    assert [post(replicas[1], BODY) for _ in range(10)] == ["10.0.0.2:8000"] * 10


def test_a_fresh_scrape_resets_the_members_counter(replicas, redis_url):
    store = make_store(redis_url)
    seed(store, {"10.0.0.1:8000": STRONG, "10.0.0.2:8000": WEAK})
    for i in range(20):
        post(replicas[i % 2], BODY)
    r = redis.Redis.from_url(redis_url)
    wait_for_total(r, 20)
    store.set_metrics("p1:Common", {"10.0.0.1:8000": {"status": "ok", "scraped_at": time.time(), "metrics": STRONG}})
    assert r.hget(DISPATCH, "10.0.0.1:8000") is None


def test_nothing_is_counted_when_herd_control_is_off(replicas, redis_url):
    seed(make_store(redis_url), {"10.0.0.1:8000": STRONG}, herd_control=False)
    assert post(replicas[0], BODY) == "10.0.0.1:8000"
    time.sleep(0.2)
    assert redis.Redis.from_url(redis_url).exists(DISPATCH) == 0
