"""Tests of scorer/jobs.py: the scoring job and its latency record, against a real Redis (and rq in burst mode)."""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Iterator

import orjson
import pytest
from rq import SimpleWorker

from llmsched.scorer import jobs
from llmsched.scorer.jobs import LATENCY_BUCKETS, latency_report, percentile, record_latency, score_pool_job
from llmsched.shared.config_model import Config, ModeConfig, PoolConfig, SchedulerConfig
from llmsched.shared.members import Member
from llmsched.shared.publish import publish_config
from llmsched.shared.scoring_queue import SERIALIZER, enqueue_scoring
from llmsched.shared.store import Store

from tests.helpers import make_store

POOL = "p1:Common"


def put_unscored_pool(store: Store, metrics: dict[str, dict], now: float | None = None) -> None:
    """What the collectors leave in Redis before a scoring job runs: config, membership, scrapes."""
    now = time.time() if now is None else now
    config = Config(
        pools=(PoolConfig(name="p1", engine_type="vllm"),),
        modes=(ModeConfig(name="s1"),),
        scheduler=SchedulerConfig(stale_after=60.0),
    )
    publish_config(store, config, "test")
    members = [Member(address=t.rpartition(":")[0], port=int(t.rpartition(":")[2]), name=t) for t in metrics]
    store.set_members(POOL, {"fetched_at": now, "members": [m.to_dict() for m in members], "error": None})
    store.set_metrics(
        POOL, {m.id: {"scraped_at": now, "status": "ok", "metrics": v} for m, v in zip(members, metrics.values())}
    )


@pytest.fixture()
def store(redis_url: str) -> Iterator[Store]:
    s = make_store(redis_url)
    jobs.install_store(s)
    yield s
    jobs.install_store(None)


def test_job_writes_the_snapshot_clears_the_pending_flag_and_records_its_latency(store: Store) -> None:
    put_unscored_pool(
        store,
        {
            "10.0.0.1:8000": {"waiting_queue": 0.0, "cache_usage": 0.1},
            "10.0.0.2:8000": {"waiting_queue": 9.0, "cache_usage": 0.9},
        },
    )
    assert enqueue_scoring(store, POOL, "scrape")
    assert store.client.exists(store.keys.pool_scoring_pending(POOL))
    score_pool_job(POOL, time.time() - 0.5, "scrape")
    snapshot = store.scores(POOL)
    assert [m["id"] for m in snapshot["members"]] == ["10.0.0.1:8000", "10.0.0.2:8000"]
    assert snapshot["members"][0]["score"] > snapshot["members"][1]["score"]
    assert not store.client.exists(store.keys.pool_scoring_pending(POOL))
    report = latency_report(store)
    assert report["scrape"]["count"] == 1 and report["scrape"]["recent"] == 1
    assert 0.5 <= report["scrape"]["max"] < 60


def test_job_for_an_unconfigured_pool_writes_nothing_but_clears_the_flag(store: Store) -> None:
    store.client.set(store.keys.pool_scoring_pending("gone:Common"), "1")
    score_pool_job("gone:Common", time.time(), "scrape")
    assert store.scores("gone:Common") is None
    assert not store.client.exists(store.keys.pool_scoring_pending("gone:Common"))
    assert latency_report(store) == {}


def test_latency_histogram_is_cumulative_with_count_sum_and_max(store: Store) -> None:
    for latency in (0.0005, 0.003, 0.003, 0.2, 42.0):
        record_latency(store, POOL, "scrape", latency)
    raw = {k.decode(): v.decode() for k, v in store.client.hgetall(store.keys.scoring_latency).items()}
    assert raw["scrape:count"] == "5"
    assert math.isclose(float(raw["scrape:sum"]), 42.2065)
    assert float(raw["scrape:max"]) == 42.0
    assert raw["scrape:le:0.001"] == "1"
    assert raw["scrape:le:0.005"] == "3"
    assert raw["scrape:le:0.25"] == "4"
    assert raw["scrape:le:10"] == "4"
    assert raw["scrape:le:+Inf"] == "5"
    assert len([k for k in raw if k.startswith("scrape:le:")]) == len(LATENCY_BUCKETS) + 1


def test_latency_is_kept_per_reason_and_negative_clock_skew_counts_as_zero(store: Store) -> None:
    record_latency(store, POOL, "scrape", 0.002)
    record_latency(store, POOL, "periodic", -0.01)
    report = latency_report(store)
    assert set(report) == {"scrape", "periodic"}
    assert report["periodic"]["max"] == 0.0 and report["periodic"]["buckets"]["0.001"] == 1


def test_recent_samples_list_is_capped_newest_first(store: Store) -> None:
    for i in range(12):
        record_latency(store, POOL, "scrape", i / 1000, keep=10)
    recent = [orjson.loads(x) for x in store.client.lrange(store.keys.scoring_latency_recent, 0, -1)]
    assert len(recent) == 10
    assert recent[0]["latency"] == 0.011 and recent[-1]["latency"] == 0.002
    assert recent[0]["pool"] == POOL and recent[0]["reason"] == "scrape"


def test_report_percentiles_come_from_the_recent_samples(store: Store) -> None:
    for i in range(1, 101):
        record_latency(store, POOL, "scrape", i / 1000)
    e = latency_report(store)["scrape"]
    assert (e["p50"], e["p90"], e["p99"]) == (0.05, 0.09, 0.099)
    assert math.isclose(e["mean"], 0.0505)


def test_percentile_is_nearest_rank() -> None:
    assert percentile([1.0], 99) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert math.isnan(percentile([], 50))


def test_without_an_installed_store_the_job_uses_the_environment(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("LLMSCHED_NAMESPACE", "other")
    jobs.install_store(None)
    try:
        other = make_store(redis_url, "other")
        put_unscored_pool(other, {"10.0.0.1:8000": {"waiting_queue": 1.0, "cache_usage": 0.5}})
        score_pool_job(POOL, time.time(), "scrape")
        assert other.scores(POOL) is not None
        assert jobs.job_store().keys.namespace == "other"
    finally:
        jobs.install_store(None)


def test_a_job_enqueued_by_name_runs_in_a_real_rq_worker(store: Store) -> None:
    put_unscored_pool(store, {"10.0.0.1:8000": {"waiting_queue": 1.0, "cache_usage": 0.5}})
    assert enqueue_scoring(store, POOL, "membership")
    worker = SimpleWorker([store.keys.scoring_queue], connection=store.client, serializer=SERIALIZER)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert worker.work(burst=True)
    finally:  # rq installs its own SIGINT/SIGTERM handlers: give pytest its own back
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert store.scores(POOL)["members"][0]["score"] is not None
    assert latency_report(store)["membership"]["count"] == 1


def test_queued_scoring_jobs_are_stored_as_json_never_pickles(redis_url):
    import orjson
    import redis as redis_lib

    from llmsched.shared.scoring_queue import enqueue_scoring

    from tests.helpers import make_store

    store = make_store(redis_url)
    assert enqueue_scoring(store, "p1:Common", "scrape", now=123.0)
    raw = redis_lib.Redis.from_url(redis_url)
    job_id = raw.lrange(f"rq:queue:{store.keys.scoring_queue}", 0, -1)[0].decode()
    data = raw.hget(f"rq:job:{job_id}", "data")
    decoded = orjson.loads(zlib_decompress(data))
    assert decoded[0] == "llmsched.scorer.jobs.score_pool_job" and decoded[2] == ["p1:Common", 123.0, "scrape"]


def zlib_decompress(data: bytes) -> bytes:
    import zlib

    return zlib.decompress(data)
