"""Pool status endpoints: the original's JSON and ?simple shapes, plus what we add."""

import pytest

from tests.helpers import seed

A = {"waiting_queue": 0.0, "cache_usage": 0.2, "running_req": 1.0}
B = {"waiting_queue": 4.0, "cache_usage": 0.6, "running_req": 3.0}


def test_unknown_pool_status_is_404_naming_the_pool(client, store):
    r = client.get("/pools/nope/Common/status")
    assert r.status_code == 404 and r.json == {"detail": "Pool nope:Common does not exist"}


def test_pool_status_json_has_the_original_fields_and_percent_of_total(client, store):
    snap = seed(store, {"10.0.0.1:8000": A, "10.0.0.2:8000": B})
    r = client.get("/pools/p1/Common/status").json
    assert (r["name"], r["partition"], r["engine_type"], r["member_count"]) == ("p1", "Common", "vllm", 2)
    scores = [m["score"] for m in snap["members"]]
    first = r["members"][0]
    assert (first["ip"], first["port"], first["score"]) == ("10.0.0.1", 8000, scores[0])
    assert first["percent"] == round(scores[0] / sum(scores) * 100, 2)
    assert first["metrics"] == A and first["detected_variant"] == "vllm" and first["eligible"] is True


def test_simple_status_is_one_plain_line_per_member_without_trailing_newline(client, store):
    snap = seed(store, {"10.0.0.1:8000": A, "10.0.0.2:8000": B})
    for query in ("?simple", "?simple=0", "?simple=true"):
        r = client.get("/pools/p1/Common/status" + query)
        assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
        expected = "\n".join(f"{m['id']} {m['score']:.4f}" for m in snap["members"])
        assert r.data.decode() == expected


def test_simple_status_of_an_empty_pool_is_an_empty_body(client, store):
    seed(store, {})
    assert client.get("/pools/p1/Common/status?simple").data == b""


def test_member_with_stale_metrics_shows_score_zero_and_not_eligible(client, store):
    seed(store, {"10.0.0.1:8000": A}, now=0.0, stale_after=5.0)
    member = client.get("/pools/p1/Common/status").json["members"][0]
    assert member["score"] == 0.0 and member["eligible"] is False and member["percent"] == 0.0


def test_all_pools_status_lists_every_configured_pool_in_config_order(client, store):
    seed(store, {"10.0.0.1:8000": A}, pool="p1")
    assert [p["name"] for p in client.get("/pools/status").json["pools"]] == ["p1"]


def test_all_pools_status_with_no_pools_is_an_empty_list(client, store):
    assert client.get("/pools/status").json == {"pools": []}


@pytest.mark.parametrize("path", ["/pools/status", "/pools/p1/Common/status"])
def test_status_with_redis_down_is_503_json(path):
    import random

    from llmsched.api.app import create_app
    from llmsched.shared.store import Store, connect

    client = create_app(Store(connect("redis://127.0.0.1:1/0", socket_timeout=0.05)), random.Random(1)).test_client()
    r = client.get(path)
    assert r.status_code == 503 and "Redis unavailable" in r.json["detail"]


def test_a_trailing_slash_is_redirected_like_the_original(client, store):
    seed(store, {"10.0.0.1:8000": {"waiting_queue": 0.0, "cache_usage": 0.2, "running_req": 1.0}})
    r = client.get("/pools/status/")
    assert (r.status_code, r.headers["Location"]) == (307, "http://localhost/pools/status")
    r = client.get("/pools/p1/Common/status/?simple")
    assert (r.status_code, r.headers["Location"]) == (307, "http://localhost/pools/p1/Common/status?simple")
    followed = client.get("/pools/status/", follow_redirects=True)
    assert followed.status_code == 200 and followed.json["pools"][0]["name"] == "p1"


def test_a_member_above_a_threshold_is_not_eligible_in_status_and_never_picked(client, store):
    # One eligibility rule (shared.routing's eligible()) for the status and the decision.
    from llmsched.shared.config_model import FallbackConfig

    seed(
        store,
        {"10.0.0.1:8000": {**A, "waiting_queue": 50.0}, "10.0.0.2:8000": A},
        fallback=FallbackConfig(member_waiting_queue_threshold=10),
    )
    members = {f"{m['ip']}:{m['port']}": m for m in client.get("/pools/p1/Common/status").json["members"]}
    assert members["10.0.0.1:8000"]["eligible"] is False and members["10.0.0.1:8000"]["score"] == 0.0
    assert members["10.0.0.2:8000"]["eligible"] is True and members["10.0.0.2:8000"]["percent"] == 100.0
    body = {"pool_name": "p1", "partition": "Common", "members": ["10.0.0.1:8000", "10.0.0.2:8000"]}
    assert {client.post("/scheduler/select", json=body).data for _ in range(50)} == {b"10.0.0.2:8000"}
