"""POST /scheduler/select: every row of the original's edge-case table, with our fixes."""

from llmsched.shared.config_model import FallbackConfig

from tests.helpers import seed

M = {"waiting_queue": 1.0, "cache_usage": 0.3, "running_req": 2.0}


def body(members, pool="p1", partition="Common", **extra):
    return {"pool_name": pool, "partition": partition, "members": members, **extra}


def select(client, payload):
    return client.post("/scheduler/select", json=payload)


def test_selected_member_is_answered_as_bare_plain_text(client, store):
    seed(store, {"10.0.0.1:8000": M})
    r = select(client, body(["10.0.0.1:8000"]))
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.data == b"10.0.0.1:8000"


def test_pool_with_pool_fallback_answers_fallback(client, store):
    seed(store, {"10.0.0.1:8000": M}, fallback=FallbackConfig(pool_fallback=True))
    assert select(client, body(["10.0.0.1:8000"])).data == b"fallback"


def test_pool_unknown_to_the_scheduler_answers_none(client, store):
    assert select(client, body(["10.0.0.1:8000"], pool="nope")).data == b"none"


def test_pool_with_no_members_answers_none(client, store):
    seed(store, {})
    assert select(client, body(["10.0.0.1:8000"])).data == b"none"


def test_no_intersection_or_unparsable_members_answer_none(client, store):
    seed(store, {"10.0.0.1:8000": M})
    assert select(client, body(["10.0.0.2:8000"])).data == b"none"
    assert select(client, body(["garbage", "127.0.0.1:abc"])).data == b"none"


def test_all_candidates_above_thresholds_answer_none(client, store):
    seed(
        store,
        {"10.0.0.1:8000": {**M, "waiting_queue": 50.0}},
        fallback=FallbackConfig(member_waiting_queue_threshold=10.0),
    )
    assert select(client, body(["10.0.0.1:8000"])).data == b"none"


def test_candidates_scoring_zero_answer_none(client, store):
    # s1 with cache at 1.0 and the worst waiting gives exactly 0
    seed(
        store,
        {
            "10.0.0.1:8000": {"waiting_queue": 9.0, "cache_usage": 1.0, "running_req": 1.0},
            "10.0.0.2:8000": {"waiting_queue": 0.0, "cache_usage": 0.0, "running_req": 1.0},
        },
    )
    assert select(client, body(["10.0.0.1:8000"])).data == b"none"


def test_members_without_fresh_metrics_are_not_picked_unlike_the_original(client, store):
    seed(store, {"10.0.0.1:8000": M}, now=0.0, stale_after=5.0)
    assert select(client, body(["10.0.0.1:8000"])).data == b"none"


def test_empty_pool_name_partition_or_members_is_400_json(client, store):
    for field, value in (("pool_name", ""), ("partition", ""), ("members", [])):
        payload = body(["10.0.0.1:8000"])
        payload[field] = value
        r = select(client, payload)
        assert r.status_code == 400
        assert r.json == {"detail": f"{field} cannot be empty"}


def test_empty_members_of_a_fallback_pool_is_still_400(client, store):
    seed(store, {"10.0.0.1:8000": M}, fallback=FallbackConfig(pool_fallback=True))
    assert select(client, body([])).status_code == 400


def test_missing_field_is_422_naming_the_field(client, store):
    r = client.post("/scheduler/select", json={"pool_name": "p1", "members": ["a:1"]})
    assert r.status_code == 422
    assert r.json["detail"][0]["loc"] == ["body", "partition"]
    assert r.json["detail"][0]["msg"] == "Field required"


def test_malformed_json_is_422_json_invalid(client, store):
    r = client.post("/scheduler/select", data=b'{"pool_name": ', content_type="application/json")
    assert r.status_code == 422 and r.json["detail"][0]["type"] == "json_invalid"


def test_wrong_types_are_422_naming_each_bad_item(client, store):
    r = select(client, {"pool_name": 5, "partition": "Common", "members": ["a:1", 7]})
    locs = [p["loc"] for p in r.json["detail"]]
    assert r.status_code == 422 and ["body", "pool_name"] in locs and ["body", "members", 1] in locs


def test_extra_fields_are_ignored(client, store):
    seed(store, {"10.0.0.1:8000": M})
    assert select(client, body(["10.0.0.1:8000"], model="m", extra=1)).data == b"10.0.0.1:8000"


def test_get_on_select_is_405_json(client):
    r = client.get("/scheduler/select")
    assert r.status_code == 405 and r.json == {"detail": "Method Not Allowed"}


def test_oversized_body_is_413(client):
    r = client.post("/scheduler/select", data=b"x" * (2 << 20), content_type="application/json")
    assert r.status_code == 413


def test_route_domain_candidate_is_answered_in_bigips_form(client, store):
    seed(store, {"10.0.0.1%2:8000": M})
    assert select(client, body(["10.0.0.1%2:8000"])).data == b"10.0.0.1%2:8000"


def test_redis_down_answers_none_instead_of_an_error():
    import random

    from llmsched.api.app import create_app
    from llmsched.shared.store import Store, connect

    client = create_app(Store(connect("redis://127.0.0.1:1/0", socket_timeout=0.05)), random.Random(1)).test_client()
    r = select(client, body(["10.0.0.1:8000"]))
    assert r.status_code == 200 and r.data == b"none"


def test_a_decision_makes_no_redis_round_trip(store):
    import random

    from llmsched.api.app import create_app

    seed(store, {"10.0.0.1:8000": M, "10.0.0.2:8000": M})
    app = create_app(store, random.Random(3))
    client = app.test_client()
    select(client, body(["10.0.0.1:8000"]))  # the worker has the pool in memory from here on
    app.extensions["llmsched.routing"].stop()  # only the request itself could touch Redis now
    trips = []
    real_pipeline, real_execute = store.client.pipeline, store.client.execute_command

    def counting_pipeline(*a, **kw):
        pipe = real_pipeline(*a, **kw)
        real = pipe.execute
        pipe.execute = lambda *x, **y: (trips.append("pipeline"), real(*x, **y))[1]
        return pipe

    store.client.pipeline = counting_pipeline
    store.client.execute_command = lambda *a, **kw: (trips.append(a[0]), real_execute(*a, **kw))[1]
    for _ in range(20):
        assert select(client, body(["10.0.0.1:8000", "10.0.0.2:8000"])).data in (b"10.0.0.1:8000", b"10.0.0.2:8000")
    assert trips == []


def test_ten_thousand_picks_match_the_score_shares_without_herd_control(client, store):
    snap = seed(
        store,
        herd_control=False,
        members={
            "10.0.0.1:8000": {"waiting_queue": 0.0, "cache_usage": 0.1, "running_req": 1.0},
            "10.0.0.2:8000": {"waiting_queue": 4.0, "cache_usage": 0.5, "running_req": 1.0},
            "10.0.0.3:8000": {"waiting_queue": 8.0, "cache_usage": 0.8, "running_req": 1.0},
        },
    )
    scores = {m["id"]: m["score"] for m in snap["members"]}
    total = sum(scores.values())
    n = 10_000
    counts = dict.fromkeys(scores, 0)
    for _ in range(n):
        counts[select(client, body(list(scores))).data.decode()] += 1
    for mid, score in scores.items():
        p = score / total
        assert abs(counts[mid] / n - p) < 4 * (p * (1 - p) / n) ** 0.5, (mid, counts[mid], p)
