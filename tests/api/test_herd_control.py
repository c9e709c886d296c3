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


def test_replicas_share_counts_so_equal_members_take_turns_instead_of_random_runs(replicas, redis_url):
    # Two equal members, decisions alternating between two replicas: with the counts shared through Redis the
    # shared round robin hands them out in turn. Independent random picks would repeat a member about every
    # other decision (150 +- 8.7 of 300); sharing the counts leaves repeats only where the previous decision's
    # count had not landed yet (it is written after the answer is sent: about a quarter of the time here, where
    # the client fires the next request the instant it reads an answer).
    same = {"waiting_queue": 0.0, "cache_usage": 0.2, "running_req": 2.0}
    seed(make_store(redis_url), {"10.0.0.1:8000": same, "10.0.0.2:8000": same})
    answers = [post(replicas[i % 2], BODY) for i in range(300)]
    repeats = sum(a == b for a, b in zip(answers, answers[1:]))
    assert repeats < 110, repeats
    assert abs(answers.count("10.0.0.1:8000") - 150) <= 15


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
