"""The `saturation` mode: absolute headroom scores, a floor for healthy members, 0 only over the hard limit."""

from __future__ import annotations

import random

import pytest

from llmsched.scorer import compute_scores, saturation
from llmsched.scorer.capacity import estimate_slack
from llmsched.shared.routing.decide import decide


def m(waiting: float, cache: float, running: float, **extra: object) -> dict:
    return {"waiting_queue": waiting, "cache_usage": cache, "running_req": running, **extra}


def scores(members: list[dict]) -> list[float | None]:
    return compute_scores("saturation", members, {})


def test_the_mode_is_reachable_through_compute_scores_and_ignores_weights() -> None:
    members = [m(0, 0.2, 10), m(0, 0.5, 30)]
    assert compute_scores("saturation", members, {"w_a": 9}) == compute_scores("saturation", members, {})


def test_the_roomiest_member_scores_1_and_the_others_in_proportion_to_their_headroom() -> None:
    # By hand, not by the function under test (BASE 0.1, KV knee 0.9, 256 slots):
    # A: capacity min(256, 30 x 0.9 / 0.3) = 90, slack 90 - 30 = 60, headroom (60 + 9) x (1 - 0.3) = 48.3
    # B: capacity min(256, 40 x 0.9 / 0.6) = 60, slack 60 - 40 = 20, headroom (20 + 6) x (1 - 0.6) = 10.4
    got = scores([m(0, 0.3, 30), m(0, 0.6, 40)])
    assert got[0] == 1.0
    assert got[1] == pytest.approx(10.4 / 48.3)


def test_headroom_is_slack_plus_a_capacity_base_times_the_free_kv_fraction() -> None:
    # capacity min(256 slots, 30 x 0.9 / 0.3 = 90) = 90; slack 90 - 30 - 2 = 58, discounted by the 2 requests
    # the scheduler turned away: 58 / 3; the snapshot's slack stays the count, 58
    got = saturation.headroom(m(2, 0.3, 30))
    assert got is not None
    assert (got.capacity, got.busy) == (pytest.approx(90), 32)
    assert got.raw == pytest.approx((58 / 3 + 0.1 * 90) * 0.7)
    assert estimate_slack(m(2, 0.3, 30), 1) == pytest.approx(58)


def test_requests_turned_away_discount_the_room_a_compute_bound_member_shows() -> None:
    # a 4-GPU member compute-bound on long prompts: 80 running in 50 % of its KV (capacity 144) and 3 requests
    # left waiting with KV and slots free (slack 61); a 1-GPU member whose KV is the limit: 3 running in 30 %
    # (capacity 9, slack 6), nothing waiting. By hand: big (61 / 4 + 14.4) x 0.5 = 14.825, small (6 + 0.9) x 0.7
    # = 4.83; undiscounted, the big one's (61 + 14.4) x 0.5 = 37.7 would leave the small one an eighth
    small, big = m(0, 0.3, 3), m(3, 0.5, 80)
    got = scores([small, big])
    assert got[1] == 1.0
    assert got[0] == pytest.approx(4.83 / 14.825)
    # nothing turned away: exactly the undiscounted headroom
    assert scores([small, m(0, 0.5, 80)])[0] == pytest.approx(4.83 / ((64 + 14.4) * 0.5))


def test_when_members_are_nearly_full_traffic_follows_capacity_not_a_coin_toss() -> None:
    # by hand: small capacity 40 x 0.9 / 0.88 = 40.9, slack 0.9; big 4 x 256 = 1024 slots, slack 24: the big one
    # keeps far more than the 27x its slack alone would give, because 0.1 x capacity dominates both headrooms
    small, big = m(0, 0.88, 40, ratio=1), m(0, 0.15, 1000, ratio=4)
    got = scores([small, big])
    assert got[1] == 1.0 and got[0] < 0.1


def test_when_alike_members_hold_more_than_they_can_run_together_every_member_scores_zero() -> None:
    # capacities 44 x 0.9 / 0.99 = 40 and 30 x 0.9 / 0.6 = 45 (alike); holding 84 + 30 >= 85: the second
    # member's room is smaller than the first one's queue, so the queue exists wherever requests go
    assert scores([m(40, 0.99, 44), m(0, 0.6, 30)]) == [0.0, 0.0]


def test_unlike_members_keep_the_pick_when_the_pool_holds_more_than_they_can_run_together() -> None:
    # the pool holds more than it can run (190 + 186 >= 54 + 256), but the members are 4.7x apart: least
    # connections would give the small one as many requests as the big one and bury it (docs/routing.md 4)
    got = scores([m(130, 0.998, 60), m(0, 0.154, 186)])
    assert got[0] == 0.0 and got[1] == 1.0


def test_a_pool_with_room_left_in_total_is_scored_even_when_one_member_is_past_its_capacity() -> None:
    # capacities 40 and 45, holding 50 + 20 < 85: the roomy member gets the traffic, the full one a trickle
    got = scores([m(10, 0.9, 40), m(0, 0.4, 20)])
    assert got[1] == 1.0 and 0.0 < got[0] < 0.05


def test_nearly_equal_members_get_nearly_equal_scores_unlike_relative_normalisation() -> None:
    # the original's s1_enhanced gives 0.85 vs 0.87 cache the full [0.2, 1.0] range
    got = scores([m(0, 0.50, 60), m(0, 0.52, 62)])
    assert got[0] == 1.0 and got[1] == pytest.approx(1.0, rel=0.15)


def test_a_saturated_member_scores_low_but_above_zero_under_the_hard_limit() -> None:
    got = scores([m(0, 0.3, 30), m(3, 0.9, 40)])
    assert got[1] == saturation.FLOOR
    assert 0.0 < got[1] < got[0]


def test_over_the_hard_limit_a_member_scores_exactly_zero() -> None:
    too_long = saturation.HARD_QUEUE_MIN + saturation.HARD_QUEUE_PER_RUNNING * 40 + 1
    got = scores([m(0, 0.3, 30), m(too_long, 0.9, 40), m(2, saturation.KV_FULL, 40)])
    assert got[1] == 0.0 and got[2] == 0.0 and got[0] == 1.0


def test_a_healthy_member_with_little_room_keeps_the_floor() -> None:
    got = scores([m(0, 0.0, 2), m(0, 0.89, 100)])  # slack 254 vs ~1
    assert got[1] == saturation.FLOOR


def test_bigip_ratio_scales_the_capacity_assumed_for_a_member() -> None:
    got = scores([m(0, 0.0, 0, ratio=4), m(0, 0.0, 0, ratio=1)])
    assert got[0] == 1.0
    assert got[1] == pytest.approx(0.25)


def test_a_member_missing_a_metric_is_not_scored() -> None:
    assert scores([m(0, 0.2, 10), {"waiting_queue": 0, "cache_usage": 0.2}]) == [1.0, None]


def snapshot(member_metrics: list[dict], now: float) -> dict:
    members = []
    for i, metrics in enumerate(member_metrics):
        mid = f"10.0.0.{i + 1}:8000"
        members.append(
            {
                "id": mid,
                "key": mid,
                "address": f"10.0.0.{i + 1}",
                "port": 8000,
                "status": "enabled",
                "ratio": 1,
                "score": None,
                "metrics": metrics,
                "scraped_at": now,
                "scrape_status": "ok",
            }
        )
    for member, score in zip(members, scores(member_metrics)):
        member["score"] = score
    return {"members": members}


def test_when_every_candidate_is_over_the_hard_limit_the_decision_fails_open_with_none() -> None:
    config = {"mode": "saturation", "stale_after": 10.0}
    snap = snapshot([m(100, 0.99, 50), m(90, 0.99, 60)], now=100.0)
    decision = decide(config, snap, ["10.0.0.1:8000", "10.0.0.2:8000"], 100.0, random.Random(1))
    assert decision.answer == "none"


def test_a_member_under_the_hard_limit_is_still_picked_when_the_others_are_over_it() -> None:
    config = {"mode": "saturation", "stale_after": 10.0}
    # the pool has room in total (busy 150 + 12 < capacities 45 + 256), all of it on the second member
    snap = snapshot([m(100, 0.99, 50), m(2, 0.02, 10)], now=100.0)
    decision = decide(config, snap, ["10.0.0.1:8000", "10.0.0.2:8000"], 100.0, random.Random(1))
    assert decision.answer == "10.0.0.2:8000"


def test_when_the_pool_is_saturated_the_decision_fails_open_to_bigip_with_none() -> None:
    # each under the hard limit (waiting 5 <= 8 + 0.5 x 40), but every member full: BIG-IP's own method decides
    config = {"mode": "saturation", "stale_after": 10.0}
    snap = snapshot([m(5, 0.9, 40), m(4, 0.92, 42)], now=100.0)
    decision = decide(config, snap, ["10.0.0.1:8000", "10.0.0.2:8000"], 100.0, random.Random(1))
    assert decision.answer == "none"


def test_idle_members_beside_loaded_peers_score_above_them_as_their_kv_holds_more() -> None:
    # a benchmark's first wave: two members carry 50 requests of load BIG-IP cannot see, in 31 % of their 70k
    # tokens; three alike members run nothing. By hand: the peers hold 0.31 x 70,000 / 50 = 434 tokens a
    # request, so an idle member fits 70,000 x 0.9 / 434 = 145.2 (headroom 145.2 x 1.1 = 159.7), a loaded one
    # 50 x 0.9 / 0.31 = 145.2 with 95.2 free ((95.2 + 14.5) x 0.69 = 75.7). The probe of 8 gave the idle ones
    # (8 + 0.8) and the loaded ones the first wave.
    kv = {"kv_capacity_tokens": 70_000.0}
    loaded, idle = m(0, 0.31, 50, **kv), m(0, 0.0, 0, **kv)
    got = scores([loaded, loaded, idle, idle, idle])
    capacity = 50 * 0.9 / 0.31
    assert got[2:] == [1.0, 1.0, 1.0]
    assert got[0] == pytest.approx((capacity - 50 + 0.1 * capacity) * 0.69 / (1.1 * capacity))


def test_an_idle_small_member_beside_a_big_one_busy_with_long_prompts_gets_only_what_its_kv_holds() -> None:
    # the big member holds 20 long prompts in 20 % of 470k tokens (4,700 each); the idle 32k-token member fits
    # 32,000 x 0.9 / 4,700 = 6.1 of them, so it scores well below the big one's room, not above it
    big = m(0, 0.2, 20, kv_capacity_tokens=470_000.0)
    small = m(0, 0.0, 0, kv_capacity_tokens=32_000.0)
    got = scores([big, small])
    fits = 32_000 * 0.9 / 4_700
    assert got[0] == 1.0
    assert got[1] == pytest.approx(fits * 1.1 / ((20 * 0.9 / 0.2 - 20 + 0.1 * 90) * 0.8))
