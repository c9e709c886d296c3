"""Readiness tells the truth about Redis and data age; liveness never depends on Redis."""

import random
import time

from llmsched.api.app import create_app
from llmsched.scorer.step import score_pool
from llmsched.shared.config_model import Config, ModeConfig, PoolConfig
from llmsched.shared.members import Member
from llmsched.shared.publish import publish_config
from llmsched.shared.store import Store, connect

from tests.helpers import seed

M = {"waiting_queue": 0.0, "cache_usage": 0.2, "running_req": 1.0}


def down_client():
    return create_app(Store(connect("redis://127.0.0.1:1/0", socket_timeout=0.05)), random.Random(1)).test_client()


def test_health_is_ready_when_redis_answers_and_a_pool_has_fresh_scores(client, store):
    seed(store, {"10.0.0.1:8000": M})
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json["status"] == "healthy" and r.json["message"] == "Scheduler running normally"
    assert r.json["pools"]["p1:Common"]["fresh"] is True


def test_health_is_503_when_redis_is_down():
    r = down_client().get("/health")
    assert r.status_code == 503 and r.json["redis"] == "down"


def test_health_is_503_when_no_pool_is_configured(client):
    assert client.get("/health").status_code == 503


def test_health_is_503_when_every_pool_scores_are_stale(client, store):
    seed(store, {"10.0.0.1:8000": M}, now=0.0, stale_after=5.0)
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json["message"] == "no pool has fresh scores"


def test_liveness_answers_even_when_redis_is_down():
    assert down_client().get("/livez").status_code == 200


def test_api_key_health_reports_disabled_like_the_original(client):
    assert client.get("/api_key_health").json == {"status": "disabled", "message": "API key sync not configured"}


def _seed_two_pools(store) -> None:
    """p1 and p2, one member each, both read from BIG-IP and freshly scored."""
    pools = tuple(PoolConfig(name=name, partition="Common", engine_type="vllm") for name in ("p1", "p2"))
    publish_config(store, Config(pools=pools, modes=(ModeConfig(name="s1", w_a=0.5, w_b=0.5),)), "test")
    now = time.time()
    for pool, address in zip(pools, ("10.0.0.1", "10.0.0.2")):
        member = Member(address=address, port=8000, name=f"{address}:8000")
        store.set_members(pool.key, {"fetched_at": now, "members": [member.to_dict()], "error": None})
        store.set_metrics(pool.key, {member.id: {"scraped_at": now, "status": "ok", "metrics": M}})
        score_pool(store, pool.key, now)


def _set_membership(store, doc, pool_key="p1:Common"):
    store.set_members(pool_key, doc)


def test_health_is_degraded_with_the_reason_when_bigip_was_never_read(client, store):
    seed(store, {"10.0.0.1:8000": M})
    # What the poller writes when the first read already fails (an untrusted certificate): no members, no fetched_at.
    _set_membership(store, {"fetched_at": None, "members": [], "error": "certificate verify failed", "error_at": 1.0})
    r = client.get("/health")
    assert r.status_code == 503
    assert r.json["status"] == "degraded"
    assert r.json["reasons"] == ["p1:Common: BIG-IP pool members never read: certificate verify failed"]
    pool = r.json["pools"]["p1:Common"]
    assert (pool["bigip"], pool["member_count"], pool["routable"]) == ("never read", 0, False)


def test_health_is_200_degraded_when_bigip_fails_after_a_good_read(client, store):
    seed(store, {"10.0.0.1:8000": M})
    members = store.status_inputs(["p1:Common"])[0][2]["members"]
    doc = {"fetched_at": time.time() - 30, "members": members, "error": "HTTP 401", "error_at": time.time()}
    _set_membership(store, doc)
    r = client.get("/health")
    assert r.status_code == 200 and r.json["status"] == "degraded"
    assert "BIG-IP read failing" in r.json["message"] and "HTTP 401" in r.json["message"]


def test_health_is_degraded_when_one_pool_of_two_cannot_be_routed(client, store):
    _seed_two_pools(store)
    _set_membership(store, {"fetched_at": None, "members": [], "error": "timeout", "error_at": 1.0}, "p2:Common")
    r = client.get("/health")
    assert r.status_code == 200 and r.json["status"] == "degraded"
    assert r.json["reasons"] == ["p2:Common: BIG-IP pool members never read: timeout"]
    assert r.json["pools"]["p1:Common"]["routable"] is True


def test_health_is_healthy_only_when_no_pool_has_a_problem(client, store):
    seed(store, {"10.0.0.1:8000": M})
    r = client.get("/health")
    assert (r.status_code, r.json["status"], r.json["reasons"]) == (200, "healthy", [])


def test_health_answers_from_the_workers_memory_and_calls_redis_down_after_three_missed_reloads(store):
    seed(store, {"10.0.0.1:8000": M})
    app = create_app(store, random.Random(1))
    state = app.extensions["llmsched.routing"]
    state.stop()  # no background reads: only the request could touch Redis
    sent = []
    real = store.client.execute_command
    store.client.execute_command = lambda *a, **kw: (sent.append(a[0]), real(*a, **kw))[1]
    store.client.pipeline = lambda *a, **kw: sent.append("pipeline")  # type: ignore[method-assign]
    r = app.test_client().get("/health")
    assert r.status_code == 200 and r.json["status"] == "healthy" and r.json["pools"]["p1:Common"]["bigip"] == "ok"
    assert sent == []
    state.loaded_at -= 3.5  # the last successful full reload was 3.5 s ago
    r = app.test_client().get("/health")
    assert r.status_code == 503 and r.json["redis"] == "down" and "no successful read for" in r.json["message"]
