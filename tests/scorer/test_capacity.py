"""llmsched.scorer.capacity.estimate_slack: requests a member can still take, from one scrape and its BIG-IP ratio."""

from __future__ import annotations

import math

import pytest

from llmsched.scorer.capacity import IDLE_CAPACITY, KV_KNEE, estimate_capacity, estimate_slack


def m(waiting: float, cache: float, running: float) -> dict:
    return {"waiting_queue": waiting, "cache_usage": cache, "running_req": running}


def test_a_member_with_a_tiny_kv_footprint_has_vllms_default_256_slots_times_its_ratio() -> None:
    assert estimate_slack(m(0, 0.0, 2), 1) == 254.0
    assert estimate_slack(m(0, 0.0, 2), 4) == 1022.0


def test_an_idle_member_is_assumed_to_take_a_probe_of_requests_times_its_ratio_not_its_slots() -> None:
    # nothing runs, so the KV its next prompts will take is unknown: long prompts fill a small GPU long before
    # its slots, so it gets a probe's worth until a scrape measures the footprint
    assert estimate_slack(m(0, 0.0, 0), 1) == IDLE_CAPACITY
    assert estimate_slack(m(0, 0.0, 0), 4) == 4 * IDLE_CAPACITY
    assert estimate_slack(m(0, 0.0, 0.5), 1) == IDLE_CAPACITY - 0.5


def test_a_kv_bound_member_has_the_requests_that_fit_below_the_kv_knee() -> None:
    # 40 running hold 60% of the cache: 40 * 0.9 / 0.6 = 60 fit, 20 more
    assert estimate_slack(m(0, 0.6, 40), 1) == pytest.approx(40 * KV_KNEE / 0.6 - 40)


def test_a_slot_bound_member_is_limited_by_the_assumed_batch_slots() -> None:
    # 200 running use 10% of the cache: KV would allow 1800, the 256 slots allow 56 more
    assert estimate_slack(m(0, 0.1, 200), 1) == pytest.approx(56.0)


def test_a_member_already_running_more_than_256_is_assumed_to_allow_1024() -> None:
    assert estimate_capacity(m(0, 0.2, 300), 1) == 1024.0
    assert estimate_capacity(m(0, 0.2, 2000), 1) == 2000 + 256.0


def test_waiting_requests_take_the_room_first_and_slack_never_goes_negative() -> None:
    assert estimate_slack(m(5, 0.6, 40), 1) == pytest.approx(15.0)
    assert estimate_slack(m(30, 0.95, 40), 1) == 0.0
    assert estimate_slack(m(1, 0.1, 200), 1) == pytest.approx(55.0)


@pytest.mark.parametrize(
    "metrics",
    [
        {"cache_usage": 0.5, "running_req": 3},
        {"waiting_queue": 0, "running_req": 3},
        {"waiting_queue": 0, "cache_usage": 0.5},
        m(0, math.nan, 3),
        m(0, 0.5, "x"),
        m(True, 0.5, 3),  # type: ignore[arg-type]
    ],
)
def test_a_missing_or_unusable_metric_gives_none(metrics: dict) -> None:
    assert estimate_slack(metrics, 1) is None


@pytest.mark.parametrize("ratio", [0, -3, None, "x", math.inf, True])
def test_a_ratio_that_is_not_a_positive_capacity_counts_as_1(ratio: object) -> None:
    assert estimate_slack(m(0, 0.0, 0), ratio) == IDLE_CAPACITY  # type: ignore[arg-type]
    assert estimate_slack(m(0, 0.0, 2), ratio) == 254.0  # type: ignore[arg-type]
