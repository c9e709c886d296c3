"""llmsched.scorer.prefix_window: a member's prefix-cache hit rate between two scrapes, carried in the snapshot."""

from __future__ import annotations

import math

import pytest

from llmsched.scorer import prefix_window
from llmsched.scorer.step import build_snapshot, score_pool

from tests.helpers import make_store
from tests.scorer.test_step import CONFIG, NOW, members

MID = "10.0.0.1:80"


def doc(at: float, hits: object, queries: object, status: str = "ok") -> dict:
    return {
        "scraped_at": at,
        "status": status,
        "metrics": {"waiting_queue": 0.0, "cache_usage": 0.2, "running_req": 2.0},
        "prefix_cache": {"hits_total": hits, "queries_total": queries, "capacity_tokens": 32000.0},
    }


def member_after(*docs: dict) -> dict:
    """The snapshot member after scoring each scrape document in turn."""
    snap = None
    for d in docs:
        snap = build_snapshot(CONFIG, members(MID), {MID: d}, d["scraped_at"], snap)
    assert snap is not None
    return snap["members"][0]


def test_the_recent_rate_is_the_counters_change_between_two_scrapes_not_since_the_start() -> None:
    # since the start 9,000 / 10,000 = 90 %; in the last 5 s 100 of 1,000 looked-up tokens came from the cache
    m = member_after(doc(NOW, 8900.0, 9000.0), doc(NOW + 5, 9000.0, 10000.0))
    assert m["prefix_window"] == {"since": NOW, "at": NOW + 5, "hits": 100.0, "queries": 1000.0}
    assert m["prefix_hit_rate_recent"] == 0.1
    assert m["prefix_counters"] == {"at": NOW + 5, "hits": 9000.0, "queries": 10000.0}


def test_the_first_scrape_has_no_window_yet() -> None:
    m = member_after(doc(NOW, 10.0, 40.0))
    assert m["prefix_window"] is None and m["prefix_hit_rate_recent"] is None
    assert m["prefix_counters"] == {"at": NOW, "hits": 10.0, "queries": 40.0}


def test_rescoring_the_same_scrape_keeps_its_window() -> None:
    first, second = doc(NOW, 0.0, 100.0), doc(NOW + 5, 30.0, 200.0)
    m = member_after(first, second, second, second)
    assert m["prefix_hit_rate_recent"] == 0.3 and m["prefix_window"]["since"] == NOW


def test_counters_that_went_down_mean_a_restart_and_give_no_window() -> None:
    m = member_after(doc(NOW, 900.0, 1000.0), doc(NOW + 5, 10.0, 50.0))
    assert m["prefix_window"] is None and m["prefix_hit_rate_recent"] is None
    # the next scrape measures from the restarted counters
    m = member_after(doc(NOW, 900.0, 1000.0), doc(NOW + 5, 10.0, 50.0), doc(NOW + 10, 40.0, 150.0))
    assert m["prefix_hit_rate_recent"] == 0.3


def test_a_window_without_queries_has_no_rate() -> None:
    m = member_after(doc(NOW, 10.0, 40.0), doc(NOW + 5, 10.0, 40.0))
    assert m["prefix_window"]["queries"] == 0.0
    assert m["prefix_hit_rate_recent"] is None


@pytest.mark.parametrize(
    "bad",
    [doc(NOW + 5, None, 50.0), doc(NOW + 5, 20.0, math.nan), doc(NOW + 5, True, 50.0), doc(NOW + 5, 20, 50, "error")],
)
def test_an_engine_without_usable_counters_has_no_counters_and_no_rate(bad: dict) -> None:
    m = member_after(doc(NOW, 10.0, 40.0), bad)
    assert m["prefix_counters"] is None and m["prefix_hit_rate_recent"] is None


def test_a_rate_above_1_from_inconsistent_counters_is_capped() -> None:
    assert prefix_window.recent_hit_rate({"hits": 12.0, "queries": 10.0}) == 1.0


def test_score_pool_builds_the_window_from_the_snapshot_it_wrote_before(redis_url) -> None:
    store = make_store(redis_url)
    store.publish_pools({"p:Common": CONFIG}, "v", "", "test")
    store.set_members("p:Common", members(MID))
    store.set_metrics("p:Common", {MID: doc(NOW, 100.0, 1000.0)})
    score_pool(store, "p:Common", NOW)
    store.set_metrics("p:Common", {MID: doc(NOW + 5, 400.0, 2000.0)})
    snap = score_pool(store, "p:Common", NOW + 5)
    assert snap is not None and snap["members"][0]["prefix_hit_rate_recent"] == 0.3
