"""The shared prefix index against a real Redis: leading matches, bounded LRU per member (in Redis and in each
worker's mirror), expiry, capacity from the scrape documents, lookups that never touch Redis, replicas that share
their records through the pool's stream, and no stall when Redis is gone."""

from __future__ import annotations

import orjson
import redis

from llmsched.shared.keys import Keys
from llmsched.shared.prefix_index import (
    DEFAULT_CAPACITY_TOKENS,
    MAX_ENTRIES,
    MIN_ENTRIES,
    PrefixIndex,
    entries_for,
    qualified,
)

POOL = "p1:Common"


def fps(tag: str, n: int) -> list[str]:
    return [f"{tag}{i:0{16 - len(tag)}x}" for i in range(n)]


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_index(redis_url: str, clock: Clock | None = None, ttl_s: float = 600.0) -> PrefixIndex:
    client = redis.Redis.from_url(redis_url, socket_timeout=2.0)
    return PrefixIndex(client, Keys(), ttl_s=ttl_s, clock=clock or Clock())


def test_lookup_counts_each_members_leading_fingerprints_only(redis_url):
    index = make_index(redis_url)
    a = fps("a", 10)
    index.record(POOL, "m1", a, 0)
    index.record(POOL, "m2", a[:3], 0)
    index.flush()
    # Same first 5 blocks, then a different tail: m1 holds 5 leading, m2 its 3; a gap ends the run.
    asked = a[:5] + fps("b", 4)
    assert index.lookup(POOL, ["m1", "m2", "m3"], asked) == {"m1": 5, "m2": 3}
    assert index.lookup(POOL, ["m1"], [fps("c", 1)[0], *a]) == {}


def test_a_members_entries_stay_bounded_by_its_kv_capacity_oldest_evicted_first(redis_url):
    clock = Clock()
    index = make_index(redis_url, clock)
    client = index.client
    # 64 x 128 tokens of KV: the LRU holds 64 fingerprints.
    client.hset(Keys().pool_metrics(POOL), "m1", orjson.dumps({"prefix_cache": {"capacity_tokens": 64 * 128}}))
    for r in range(5):  # five requests of 40 fingerprints each, one second apart
        clock.now += 1
        index.record(POOL, "m1", fps(f"r{r}", 40), 0)
        index.flush()
    key = Keys().pool_prefix(POOL, "m1")
    assert client.zcard(key) == 64
    # The newest request is whole; of the one before, only its leading 24 survive (its tail went first).
    assert index.lookup(POOL, ["m1"], fps("r4", 40)) == {"m1": 40}
    assert index.lookup(POOL, ["m1"], fps("r3", 40)) == {"m1": 24}
    assert index.lookup(POOL, ["m1"], fps("r2", 40)) == {}


def test_capacity_comes_from_the_engine_with_a_default_and_bounds(redis_url):
    assert entries_for(None) == DEFAULT_CAPACITY_TOKENS // 128
    assert entries_for(0) == DEFAULT_CAPACITY_TOKENS // 128
    assert entries_for(1_000_000) == 1_000_000 // 128
    assert entries_for(10) == MIN_ENTRIES
    assert entries_for(1e12) == MAX_ENTRIES
    index = make_index(redis_url)
    index.client.hset(Keys().pool_metrics(POOL), "m1", orjson.dumps({"prefix_cache": {"capacity_tokens": 12800}}))
    index.client.hset(Keys().pool_metrics(POOL), "m2", orjson.dumps({"metrics": {}}))
    index.record(POOL, "m1", fps("a", 1), 0)
    index.flush()
    assert index.capacity(POOL, "m1") == 100
    assert index.capacity(POOL, "m2") == DEFAULT_CAPACITY_TOKENS // 128


def test_entries_expire_after_the_ttl_and_are_removed_by_the_next_write(redis_url):
    clock = Clock()
    index = make_index(redis_url, clock, ttl_s=600.0)
    old = fps("a", 8)
    index.record(POOL, "m1", old, 0)
    index.flush()
    clock.now += 599
    assert index.lookup(POOL, ["m1"], old) == {"m1": 8}
    clock.now += 2
    assert index.lookup(POOL, ["m1"], old) == {}
    index.record(POOL, "m1", fps("b", 2), 0)
    index.flush()
    key = Keys().pool_prefix(POOL, "m1")
    assert index.client.zcard(key) == 2
    assert 0 < index.client.ttl(key) <= 600


def test_a_record_refreshes_an_entry_and_models_are_kept_apart(redis_url):
    clock = Clock()
    index = make_index(redis_url, clock)
    a = fps("a", 4)
    index.record(POOL, "m1", qualified(a, "llama"), 0)
    index.flush()
    clock.now += 500
    index.record(POOL, "m1", qualified(a, "llama"), 4)
    index.flush()
    clock.now += 200  # 700 s after the first record, 200 after the second
    assert index.lookup(POOL, ["m1"], qualified(a, "llama")) == {"m1": 4}
    assert index.lookup(POOL, ["m1"], qualified(a, "qwen")) == {}
    assert index.lookup(POOL, ["m1"], a) == {}


def test_the_index_keeps_its_own_hit_estimate_per_member(redis_url):
    index = make_index(redis_url)
    index.record(POOL, "m1", fps("a", 10), 0)
    index.record(POOL, "m1", fps("a", 10), 10)
    index.record(POOL, "m2", fps("b", 4), 1)
    index.flush()
    assert index.stats([POOL]) == {POOL: {"m1": {"sent": 20, "matched": 10}, "m2": {"sent": 4, "matched": 1}}}


def counting(client: redis.Redis) -> list[str]:
    """The commands `client` sends from now on (pipelines included), by name."""
    sent: list[str] = []
    real_execute, real_pipeline = client.execute_command, client.pipeline

    def pipeline(*a, **kw):
        pipe = real_pipeline(*a, **kw)
        real = pipe.execute
        pipe.execute = lambda *x, **y: (sent.extend(str(c[0][0]) for c in pipe.command_stack), real(*x, **y))[1]
        return pipe

    client.execute_command = lambda *a, **kw: (sent.append(a[0]), real_execute(*a, **kw))[1]  # type: ignore[method-assign]
    client.pipeline = pipeline  # type: ignore[method-assign]
    return sent


def test_a_lookup_reads_the_workers_mirror_and_sends_nothing_to_redis(redis_url):
    index = make_index(redis_url)
    index.record(POOL, "m3", fps("a", 64), 0)
    index.flush()
    sent = counting(index.client)
    assert index.lookup(POOL, [f"m{i}" for i in range(50)], fps("a", 64)) == {"m3": 64}
    assert index.lookup(POOL, None, fps("a", 64)) == {"m3": 64}
    assert sent == []


def member_ids(_pool: str) -> list[str]:
    return ["m1", "m2", "m3"]


def test_another_replica_sees_the_records_through_the_stream_and_one_that_starts_loads_them(redis_url):
    clock = Clock()
    a, b = make_index(redis_url, clock), make_index(redis_url, clock)
    b.sync([POOL], member_ids)  # b follows the pool's stream from here
    a.record(POOL, "m1", fps("x", 8), 0)
    a.record(POOL, "m2", fps("y", 3), 0)
    a.flush()
    assert b.lookup(POOL, None, fps("x", 8)) == {}  # not read yet: b never asks Redis on a lookup
    assert b.sync([POOL], member_ids) == 2
    assert b.lookup(POOL, None, fps("x", 8)) == {"m1": 8}
    assert b.lookup(POOL, None, fps("y", 3)) == {"m2": 3}
    a.record(POOL, "m3", fps("z", 2), 0)  # only what is new since is read the next time
    a.flush()
    assert b.sync([POOL], member_ids) == 1
    assert b.lookup(POOL, None, fps("z", 2)) == {"m3": 2}
    late = make_index(redis_url, clock)  # a worker that starts now loads the sorted sets
    assert late.sync([POOL], member_ids) == 0
    assert late.lookup(POOL, None, fps("x", 8)) == {"m1": 8}
    assert late.lookup(POOL, None, fps("z", 2)) == {"m3": 2}
    assert a.sync([POOL], member_ids) == 0  # its own records are not applied twice


def test_the_mirror_stays_bounded_by_the_members_kv_capacity(redis_url):
    clock = Clock()
    a, b = make_index(redis_url, clock), make_index(redis_url, clock)
    a.client.hset(Keys().pool_metrics(POOL), "m1", orjson.dumps({"prefix_cache": {"capacity_tokens": 64 * 128}}))
    b.sync([POOL], member_ids)
    for r in range(5):
        clock.now += 1
        a.record(POOL, "m1", fps(f"r{r}", 40), 0)
        a.flush()
    b.lookup(POOL, None, fps("r4", 1))  # b decides for the pool: it reads the stream at every sync
    b.sync([POOL], member_ids)
    assert len(b._mirror[POOL]["m1"]) == 64
    assert b.lookup(POOL, None, fps("r4", 40)) == {"m1": 40}
    assert b.lookup(POOL, None, fps("r3", 40)) == {"m1": 24}
    assert b.lookup(POOL, None, fps("r2", 40)) == {}


def test_the_mirror_forgets_expired_entries(redis_url):
    clock = Clock()
    index = make_index(redis_url, clock, ttl_s=600.0)
    index.record(POOL, "m1", fps("a", 8), 0)
    clock.now += 601
    index.record(POOL, "m2", fps("b", 2), 0)
    assert index.lookup(POOL, None, fps("a", 8)) == {}
    index.sync([POOL], member_ids)  # prunes
    assert set(index._mirror[POOL]) == {"m2"}


def test_redis_down_keeps_the_mirror_and_drops_the_records():
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.05, socket_connect_timeout=0.05)
    index = PrefixIndex(dead, Keys())
    assert index.lookup(POOL, ["m1"], fps("a", 4)) == {}
    index.record(POOL, "m1", fps("a", 4), 0)
    assert index.lookup(POOL, ["m1"], fps("a", 4)) == {"m1": 4}
    for step in (index.flush, lambda: index.sync([POOL], member_ids)):
        try:
            step()
            raise AssertionError("a write or read against a dead Redis must raise StoreError")
        except Exception as exc:
            assert type(exc).__name__ == "StoreError"
    assert index.flush() == 0  # nothing left queued
    assert index.lookup(POOL, ["m1"], fps("a", 4)) == {"m1": 4}


def test_a_prefix_the_member_holds_is_rewritten_at_most_once_a_second(redis_url):
    clock = Clock()
    index = make_index(redis_url, clock)
    a = fps("a", 8)
    index.record(POOL, "m1", a, 0)
    index.flush()
    key = Keys().pool_prefix(POOL, "m1")
    first = index.client.zscore(key, a[0])
    clock.now += 0.5
    index.record(POOL, "m1", a[:6] + fps("b", 2), 6)  # held its 6 leading: only the 2 new ones are written
    index.flush()
    assert index.client.zscore(key, a[0]) == first
    assert index.lookup(POOL, ["m1"], a[:6] + fps("b", 2)) == {"m1": 8}
    clock.now += 1.0
    index.record(POOL, "m1", a, 8)  # a second later the held part's recency is refreshed
    index.flush()
    assert index.client.zscore(key, a[0]) == clock.now
    assert index.stats([POOL])[POOL]["m1"] == {"sent": 24, "matched": 14}
