import threading

import orjson
import pytest
import redis

from llmsched.shared.errors import StoreError
from llmsched.shared.keys import Keys
from llmsched.shared.store import Store, connect

from tests.helpers import make_store, seed


def test_every_key_of_a_pool_shares_one_cluster_hash_tag():
    keys = Keys("ns").pool_all("Pool_vllm:Common")
    tags = {k[k.index("{") + 1 : k.index("}")] for k in keys}
    assert tags == {"Pool_vllm:Common"}
    assert all(k.startswith("ns:pool:") for k in keys)


def test_publishing_a_config_forgets_pools_that_left_it(redis_url):
    store = make_store(redis_url)
    store.publish_pools({"a:Common": {"name": "a"}, "b:Common": {"name": "b"}}, "v1", "f.yaml", "test")
    store.set_scores("b:Common", {"members": []})
    store.publish_pools({"a:Common": {"name": "a"}}, "v2", "f.yaml", "test")
    assert store.pool_keys() == ["a:Common"]
    assert store.pool_config("b:Common") is None and store.scores("b:Common") is None
    assert store.config_version() == "v2"


def test_values_are_plain_json_readable_with_redis_cli(redis_url):
    store = make_store(redis_url)
    seed(store, {"10.0.0.1:80": {"waiting_queue": 1.0, "cache_usage": 0.5, "running_req": 2.0}})
    raw = redis.Redis.from_url(redis_url)
    assert orjson.loads(raw.get("llmsched:pool:{p1:Common}:scores"))["members"][0]["id"] == "10.0.0.1:80"
    assert orjson.loads(raw.hget("llmsched:pool:{p1:Common}:metrics", "10.0.0.1:80"))["status"] == "ok"
    assert orjson.loads(raw.get("llmsched:pools")) == ["p1:Common"]


def test_namespaces_keep_two_deployments_apart(redis_url):
    a, b = make_store(redis_url, "a"), make_store(redis_url, "b")
    a.publish_pools({"x:Common": {}}, "v", "", "t")
    assert b.pool_keys() == []


def test_metrics_of_members_that_left_the_pool_are_dropped_and_fresh_scrapes_reset_dispatch(redis_url):
    store = make_store(redis_url)
    store.set_metrics("p:C", {"m1": {"status": "ok"}, "m2": {"status": "ok"}})
    store.exchange_dispatch({"p:C": {"m1": 1, "m2": 1}}, {"p:C": 60}, [])
    store.set_metrics("p:C", {"m1": {"status": "ok"}}, keep=["m1"])
    assert set(store.metrics("p:C")) == {"m1"}
    assert store.decision_inputs("p:C")[2] == {"m2": 1}


def test_herd_counts_are_added_and_every_replicas_totals_read_back_in_one_exchange(redis_url):
    a, b = make_store(redis_url), make_store(redis_url)
    assert a.exchange_dispatch({"p:C": {"m1": 2}}, {"p:C": 60}, ["p:C"]) == {"p:C": {"m1": 2}}
    assert b.exchange_dispatch({"p:C": {"m1": 1, "m2": 3}}, {"p:C": 60}, ["p:C", "q:C"]) == {
        "p:C": {"m1": 3, "m2": 3},
        "q:C": {},
    }
    assert 0 < a.client.ttl(a.keys.pool_dispatch("p:C")) <= 60
    assert a.exchange_dispatch({}, {}, ["p:C"]) == {"p:C": {"m1": 3, "m2": 3}}


def test_score_snapshots_and_published_configs_are_announced_on_the_changes_channel(redis_url):
    store = make_store(redis_url)
    pubsub = store.client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(store.keys.changes)
    pubsub.get_message(timeout=1.0)
    store.set_scores("p:C", {"computed_at": 1.0, "members": []})
    store.publish_pools({"p:C": {}}, "v1", "test", "t")
    got = []
    while len(got) < 2 and (message := pubsub.get_message(timeout=5.0)) is not None:
        got.append(message["data"])
    assert got == [b"p:C", b"*"]
    assert store.routing_data() == {"p:C": ({}, {"computed_at": 1.0, "members": []})}


def test_unreachable_redis_raises_store_error_quickly():
    store = Store(connect("redis://127.0.0.1:1/0", socket_timeout=0.05))
    with pytest.raises(StoreError):
        store.decision_inputs("p:C")
    assert store.ping() is False


def test_readers_never_see_a_half_written_snapshot(redis_url):
    store = make_store(redis_url)
    stop = threading.Event()
    torn = []

    def write():
        n = 0
        while not stop.is_set():
            n += 1
            members = [{"id": f"10.0.0.{i}:80", "score": n} for i in range(50)]
            store.set_scores("p:C", {"version": n, "members": members})

    def read():
        reader = make_store(redis_url)
        for _ in range(300):
            snap = reader.decision_inputs("p:C")[1]
            if snap and {m["score"] for m in snap["members"]} != {snap["version"]}:
                torn.append(snap["version"])

    writer = threading.Thread(target=write)
    writer.start()
    readers = [threading.Thread(target=read) for _ in range(4)]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    stop.set()
    writer.join()
    assert torn == []
