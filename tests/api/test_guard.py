"""The optional admin token guards every endpoint but decisions, health checks and metrics."""

import random

import pytest

from llmsched.api.app import create_app

from tests.helpers import seed

M = {"waiting_queue": 1.0, "cache_usage": 0.3, "running_req": 2.0}
BODY = {"pool_name": "p1", "partition": "Common", "members": ["10.0.0.1:8000"]}
GUARDED = [
    ("get", "/pools/status"),
    ("get", "/pools/p1/Common/status"),
    ("get", "/ui"),
    ("get", "/ui/data.json"),
    ("post", "/pools/p1/Common/simulate"),
    ("post", "/pools/p1/Common/analyze"),
    ("get", "/api_key_health"),
]


@pytest.fixture()
def guarded(store):
    seed(store, {"10.0.0.1:8000": M})
    return create_app(store, random.Random(1), admin_token="s3cret-token").test_client()


@pytest.mark.parametrize("method,path", GUARDED)
def test_guarded_endpoints_refuse_requests_without_the_token(guarded, method, path):
    r = getattr(guarded, method)(path, json=BODY)
    assert r.status_code == 401 and "admin token" in r.json["detail"]
    assert "s3cret" not in r.get_data(as_text=True)
    assert getattr(guarded, method)(path, json=BODY, headers={"Authorization": "Bearer wrong"}).status_code == 401


@pytest.mark.parametrize("method,path", GUARDED)
def test_guarded_endpoints_answer_with_the_token_in_a_header(guarded, method, path):
    r = getattr(guarded, method)(path, json=BODY, headers={"Authorization": "Bearer s3cret-token"})
    assert r.status_code == 200


def test_the_status_page_accepts_the_token_as_a_query_parameter_for_browsers(guarded):
    assert guarded.get("/ui?token=s3cret-token").status_code == 200


def test_decisions_health_and_metrics_stay_open_for_bigip_and_prometheus(guarded):
    assert guarded.post("/scheduler/select", json=BODY).data == b"10.0.0.1:8000"
    assert guarded.get("/livez").status_code == 200
    assert guarded.get("/health").status_code == 200
    assert guarded.get("/metrics").status_code == 200


def test_without_a_token_configured_everything_is_open(client, store):
    seed(store, {"10.0.0.1:8000": M})
    assert client.get("/pools/status").status_code == 200
