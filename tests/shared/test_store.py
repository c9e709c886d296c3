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


def _writes_seen_by_redis(redis_url: str, action) -> list[list[str]]:
    """Every command Redis executed while `action` ran (MONITOR), up to an ECHO marker sent after it."""
    watcher = redis.Redis.from_url(redis_url, socket_timeout=5)
    seen: list[list[str]] = []
    with watcher.monitor() as monitor:
        action()
        redis.Redis.from_url(redis_url).echo("end-of-action")
        while True:
            command = monitor.next_command()["command"]
            if command == "ECHO end-of-action":
                return seen
            seen.append(command)


def test_readers_never_see_a_half_written_snapshot(redis_url):
    # A decision reads the snapshot in one GET; it can only be torn if the snapshot is written in several steps.
    # So: writing a snapshot must be exactly one command that replaces the whole value (SET), nothing before it.
    store = make_store(redis_url)
    snapshot = {"version": 7, "members": [{"id": f"10.0.0.{i}:80", "score": i / 10} for i in range(50)]}
    key = store.keys.pool_scores("p:C")
    commands = _writes_seen_by_redis(redis_url, lambda: store.set_scores("p:C", snapshot))
    # Reads are not what could tear it, and an API worker of another test on this Redis server may read the
    # snapshot the moment its write is announced: count the commands that change the key.
    touching = [c for c in commands if key in c and c.split(" ", 1)[0] not in ("GET", "MGET", "EXISTS")]
    assert len(touching) == 1, touching
    assert touching[0].startswith(f"SET {key} "), touching
    assert store.scores("p:C") == snapshot
