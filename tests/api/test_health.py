"""Readiness tells the truth about Redis and data age; liveness never depends on Redis."""

import random

from llmsched.api.app import create_app
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
