"""Dispatch counters in Redis, shared by every API replica (real gunicorn processes against a real Redis)."""
import http.client
import json
import os
import socket
import subprocess
import sys
import time

import pytest
import redis

from tests.conftest import free_port
from tests.helpers import make_store, seed

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
    ports, procs = [free_port(), free_port()], []
    env = {**os.environ, "LLMSCHED_LOG_LEVEL": "warning"}
    for port in ports:
        procs.append(subprocess.Popen([sys.executable, "-m", "cli.main", "api", "--redis-url", redis_url,
                                       "--bind", f"127.0.0.1:{port}", "--workers", "2"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for port in ports:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "API replica did not start"
                time.sleep(0.1)
    yield ports
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def wait_for_total(r: redis.Redis, expected: int) -> dict:
    deadline = time.monotonic() + 5
    while True:   # counts are written right after each answer is sent; give the last one a moment
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


def test_replicas_spread_load_away_from_the_member_that_already_got_decisions(replicas, redis_url):
    store = make_store(redis_url)
    snap = seed(store, {"10.0.0.1:8000": STRONG, "10.0.0.2:8000": WEAK}, herd_control=True)
    strong_share = snap["members"][0]["score"] / sum(m["score"] for m in snap["members"])
    answers = [post(replicas[i % 2], BODY) for i in range(300)]
    # Without herd control the strong member would get its score share (about 95 %) of all 300, give or take
    # 1.3 % (one binomial standard deviation); counting its decisions since the scrape takes > 6 of those off.
    assert strong_share > 0.9
    assert answers.count("10.0.0.1:8000") / len(answers) < strong_share - 0.08


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
