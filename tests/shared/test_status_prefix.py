"""Each member's real prefix-cache hit rate (its engine's counters, over the last scrape interval and since it
started) next to the prefix index's estimate, in the
status view, `llmsched status` and the API's /metrics."""

from __future__ import annotations

import random
import time

import pytest

from llmsched.api.app import create_app
from llmsched.cli.status import format_pool
from llmsched.scorer.step import score_pool
from llmsched.shared.keys import Keys
from llmsched.shared.prefix_index import PrefixIndex
from llmsched.shared.status import engine_hit_rate, index_estimate, read_status

from tests.helpers import make_store, seed

M = {"waiting_queue": 0.0, "cache_usage": 0.2, "running_req": 2.0}
POOL = "p1:Common"


@pytest.fixture()
def store(redis_url):
    return make_store(redis_url)


def _prepare(store):
    seed(store, {"10.0.0.1:8000": M, "10.0.0.2:8000": M})
    docs = {
        "10.0.0.1:8000": {
            "scraped_at": time.time(),
            "status": "ok",
            "metrics": M,
            "engine": "vllm",
            "prefix_cache": {"hits_total": 300.0, "queries_total": 1000.0, "capacity_tokens": 32000.0},
        },
        "10.0.0.2:8000": {"scraped_at": time.time(), "status": "ok", "metrics": M, "engine": "vllm"},
    }
    store.set_metrics(POOL, docs)
    index = PrefixIndex(store.client, Keys())
    index.record(POOL, "10.0.0.1:8000", [f"{i:016x}" for i in range(10)], 4)
    index.flush()


def test_the_status_view_shows_the_engines_hit_rate_and_the_index_estimate(store):
    _prepare(store)
    members = {m["id"]: m for m in read_status(store, time.time())["pools"][0]["members"]}
    assert members["10.0.0.1:8000"]["prefix_hit_rate"] == 0.3
    assert members["10.0.0.1:8000"]["prefix_estimate"] == 0.4
    assert members["10.0.0.1:8000"]["kv_capacity_tokens"] == 32000.0
    assert members["10.0.0.2:8000"]["prefix_hit_rate"] is None and members["10.0.0.2:8000"]["prefix_estimate"] is None
    text = format_pool(read_status(store, time.time())["pools"][0])
    assert "hit% recent/start/index" in text and " -/30/40 " in text and " -/-/- " in text


def test_hit_rates_prefer_the_counters_then_the_gauge():
    assert engine_hit_rate({"prefix_cache": {"hits_total": 1.0, "queries_total": 4.0, "hit_rate": 0.9}}) == 0.25
    assert engine_hit_rate({"prefix_cache": {"hits_total": 0.0, "queries_total": 0.0, "hit_rate": 0.9}}) == 0.9
    assert engine_hit_rate({}) is None
    assert index_estimate({"sent": 0, "matched": 0}) is None
    assert index_estimate({"sent": 8, "matched": 2}) == 0.25


def test_metrics_export_both_hit_rates_per_member(store):
    _prepare(store)
    app = create_app(store, random.Random(1))
    text = app.test_client().get("/metrics").data.decode()
    app.extensions["llmsched.routing"].stop()
    assert 'llmsched_member_prefix_cache_hit_ratio{member="10.0.0.1:8000",pool="p1:Common"} 0.3' in text
    assert 'llmsched_member_prefix_index_hit_ratio{member="10.0.0.1:8000",pool="p1:Common"} 0.4' in text
    assert 'llmsched_member_prefix_cache_hit_ratio{member="10.0.0.2:8000"' not in text


def test_the_status_view_shows_the_hit_rate_of_the_last_scrape_interval_next_to_the_one_since_the_start(store):
    _prepare(store)
    score_pool(store, POOL, time.time())
    later = {
        "scraped_at": time.time() + 5,
        "status": "ok",
        "metrics": M,
        "engine": "vllm",
        "prefix_cache": {"hits_total": 1200.0, "queries_total": 2000.0, "capacity_tokens": 32000.0},
    }
    store.set_metrics(POOL, {"10.0.0.1:8000": later})
    score_pool(store, POOL, time.time() + 5)
    members = {m["id"]: m for m in read_status(store, time.time() + 5)["pools"][0]["members"]}
    # since the start 1,200 / 2,000; over the last interval 900 of 1,000
    assert members["10.0.0.1:8000"]["prefix_hit_rate"] == 0.6
    assert members["10.0.0.1:8000"]["prefix_hit_rate_recent"] == 0.9
    assert members["10.0.0.1:8000"]["prefix_window_s"] == pytest.approx(5.0, abs=0.5)
    assert members["10.0.0.2:8000"]["prefix_hit_rate_recent"] is None
    text = format_pool(read_status(store, time.time() + 5)["pools"][0])
    assert " 90/60/40 " in text
    app = create_app(store, random.Random(1))
    exported = app.test_client().get("/metrics").data.decode()
    app.extensions["llmsched.routing"].stop()
    assert 'llmsched_member_prefix_cache_hit_ratio_recent{member="10.0.0.1:8000",pool="p1:Common"} 0.9' in exported
