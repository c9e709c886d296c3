"""llmsched.scorer.capacity.estimate_slack: requests a member can still take, from one scrape and its BIG-IP ratio
(and, for a member that runs nothing, its pool peers' measured KV footprint)."""

from __future__ import annotations

import math

import pytest

from llmsched.scorer.capacity import (
    IDLE_CAPACITY,
    KV_KNEE,
    KV_SIZE,
    PeerFootprint,
    estimate_capacity,
    estimate_slack,
    peer_footprint,
)


def m(waiting: float, cache: float, running: float) -> dict:
    return {"waiting_queue": waiting, "cache_usage": cache, "running_req": running}


def test_a_member_with_a_tiny_kv_footprint_has_vllms_default_256_slots_times_its_ratio() -> None:
    assert estimate_slack(m(0, 0.0, 2), 1) == 254.0
    assert estimate_slack(m(0, 0.0, 2), 4) == 1022.0


def test_an_idle_member_with_no_measurable_peer_is_assumed_to_take_a_probe_of_requests_times_its_ratio() -> None:
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


def sized(waiting: float, cache: float, running: float, kv_tokens: float | None, ratio: float = 1) -> dict:
    return {**m(waiting, cache, running), KV_SIZE: kv_tokens, "ratio": ratio}


def test_the_peer_footprint_pools_the_kv_in_use_over_the_running_requests_of_measurable_members() -> None:
    # 20 running in 50 % of 32,000 tokens and 10 running in 10 % of 96,000: (16,000 + 9,600) / 30 tokens each;
    # in ratio units (the 96k one at ratio 3): (0.5 + 0.3) / 30. An idle member and one whose usage is noise
    # say nothing; a member without a KV size counts in ratio units only.
    peers = peer_footprint(
        [
            sized(0, 0.5, 20, 32_000),
            sized(0, 0.1, 10, 96_000, ratio=3),
            sized(0, 0.0, 0, 32_000),
            sized(0, 0.00001, 5, 32_000),
            sized(0, 0.2, 10, None),
        ]
    )
    assert peers.tokens == pytest.approx(25_600 / 30)
    assert peers.ratio == pytest.approx((0.5 + 0.3 + 0.2) / 40)
    assert peer_footprint([sized(0, 0.0, 0, 32_000)]) == PeerFootprint(tokens=None, ratio=None)


def test_an_idle_member_gets_the_requests_its_own_kv_holds_at_its_busy_peers_footprint() -> None:
    # busy peers hold 800 tokens per request: an idle 64k-token member fits 64,000 x 0.9 / 800 = 72 of them,
    # an idle 8k-token one 9 (a small GPU beside long prompts: a handful, not its 256 slots)
    peers = peer_footprint([sized(0, 0.5, 20, 32_000)])
    assert estimate_slack(sized(0, 0.0, 0, 64_000), 1, peers) == pytest.approx(64_000 * KV_KNEE / 800)
    assert estimate_slack(sized(0, 0.0, 0, 8_000), 1, peers) == pytest.approx(8_000 * KV_KNEE / 800)
    # a busy member keeps its own measurement; the slot limit still caps the idle one
    assert estimate_slack(sized(0, 0.6, 40, 64_000), 1, peers) == pytest.approx(40 * KV_KNEE / 0.6 - 40)
    tiny = peer_footprint([sized(0, 0.5, 200, 32_000)])  # 80 tokens a request: 720 fit in KV, 256 slots
    assert estimate_capacity(sized(0, 0.0, 0, 64_000), 1, tiny) == 256.0


def test_without_kv_sizes_an_idle_member_is_scaled_from_its_peers_by_bigip_ratio() -> None:
    # a busy ratio-1 peer fits 20 x 0.9 / 0.5 = 36; an idle ratio-2 member is taken as twice its size: 72
    peers = peer_footprint([sized(0, 0.5, 20, None)])
    assert peers.tokens is None
    assert estimate_capacity(sized(0, 0.0, 0, None, ratio=2), 2, peers) == pytest.approx(72)
    # its own KV size is useless without a peer's in tokens: ratio units again
    assert estimate_capacity(sized(0, 0.0, 0, 64_000), 1, peers) == pytest.approx(36)


def test_an_idle_member_gets_the_probe_when_no_peer_is_measurable() -> None:
    peers = peer_footprint([sized(0, 0.0, 0, 32_000), sized(0, 0.0, 0.5, 32_000)])
    assert estimate_capacity(sized(0, 0.0, 0, 64_000), 1, peers) == IDLE_CAPACITY
    assert estimate_capacity(sized(0, 0.0, 0, 64_000), 4, peers) == 4 * IDLE_CAPACITY
