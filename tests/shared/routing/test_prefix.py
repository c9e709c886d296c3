"""The sticky-until-saturated prefix stage: llmsched.shared.routing.prefix and its hook in decide()."""

from __future__ import annotations

import math
import random

import pytest

from llmsched.shared.routing import prefix
from llmsched.shared.routing.decide import decide

from tests.shared.routing.test_decide import NOW
from tests.shared.routing.test_decide import member as decide_member

CONFIG = {"name": "p", "partition": "Common", "pool_fallback": False, "stale_after": 10.0, "herd_control": True}


def member(mid: str, slack: float | None, running: float = 0.0, waiting: float = 0.0, score: float = 0.5) -> dict:
    """A snapshot member (tests/shared/routing/test_decide.py) with the scorer's slack estimate."""
    m = decide_member(mid, score=score, running_req=running, waiting_queue=waiting, cache_usage=0.1)
    return {**m, "slack": slack}


A, B, C = "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"


# --- sticky_pick -----------------------------------------------------------------------------------------------
def test_the_member_holding_the_longest_prefix_is_picked_while_it_is_under_the_threshold() -> None:
    assert prefix.sticky_pick([3, 20, 0], [0.1, 0.7, 0.0], threshold=0.8, near=0.9) == 1


def test_a_saturated_holder_gives_no_prefix_pick_so_the_load_pick_decides() -> None:
    assert prefix.sticky_pick([0, 20, 0], [0.1, 0.8, 0.0], threshold=0.8, near=0.9) is None
    assert prefix.sticky_pick([0, 20, 0], [0.1, math.inf, 0.0], threshold=math.inf, near=0.9) is None


def test_members_holding_nearly_the_longest_match_share_it_by_load() -> None:
    # 18 >= 0.5 x 20: both hold the prefix, the less loaded one wins
    assert prefix.sticky_pick([18, 20], [0.2, 0.6], threshold=0.8, near=0.5) == 0
    # with near 0.95 only the longest counts
    assert prefix.sticky_pick([18, 20], [0.2, 0.6], threshold=0.8, near=0.95) == 1


def test_when_the_longest_holder_is_saturated_a_near_holder_takes_it() -> None:
    assert prefix.sticky_pick([15, 20, 0], [0.3, 0.9, 0.0], threshold=0.8, near=0.5) == 0


def test_equal_loads_go_to_the_longer_match() -> None:
    assert prefix.sticky_pick([15, 20], [0.0, 0.0], threshold=0.8, near=0.5) == 1


def test_no_match_or_a_match_below_the_minimum_gives_no_prefix_pick() -> None:
    assert prefix.sticky_pick([0, 0], [0.0, 0.0]) is None
    assert prefix.sticky_pick([], []) is None
    assert prefix.sticky_pick([2, 1], [0.0, 0.0], min_match=3) is None


# --- member_load -----------------------------------------------------------------------------------------------
def test_load_is_the_share_of_estimated_capacity_in_use_counting_decisions_since_the_scrape() -> None:
    m = member(A, slack=6.0, running=3.0, waiting=1.0)  # capacity 3 + 1 + 6 = 10
    assert prefix.member_load(m, 0) == pytest.approx(0.4)
    assert prefix.member_load(m, 4) == pytest.approx(0.8)


def test_a_member_without_a_capacity_estimate_is_never_sticky() -> None:
    assert prefix.member_load(member(A, slack=None), 0) == math.inf
    assert prefix.member_load(member(A, slack=0.0), 0) == math.inf  # nothing running, no slack


# --- pick over snapshot members --------------------------------------------------------------------------------
def test_pick_reads_matches_by_member_id_and_counts_decisions_sent_since_the_scrape() -> None:
    members = [member(A, slack=10.0, running=5.0), member(B, slack=10.0, running=2.0)]
    assert prefix.pick(members, {B: 12}) == 1
    # 8 sent to B since its scrape: (2 + 8) / 12 > 0.8, saturated: the overflow goes to A, 5 / 15 in use
    assert prefix.pick(members, {B: 12}, {B: 8}, threshold=0.8) == 0
    assert prefix.pick(members, {}) is None


# --- overflow: every holder saturated ------------------------------------------------------------------------
def test_overflow_goes_to_the_least_loaded_member_and_equal_loads_to_the_longer_match() -> None:
    assert prefix.overflow_pick([20, 0, 3], [1.2, 0.5, 0.4]) == 2
    assert prefix.overflow_pick([20, 0, 3], [0.4, 0.5, 0.4]) == 0
    assert prefix.overflow_pick([20, 0], [math.inf, math.inf]) is None


def test_overflow_fills_the_room_left_counting_decisions_sent_since_the_scrape() -> None:
    # B holds the prefix but is saturated; A and C have room: the overflow takes the least used one, and the
    # decisions already sent count, so it moves on once A has received its share of the room left
    members = [member(A, slack=10.0), member(B, slack=0.0, running=20.0), member(C, slack=10.0, running=4.0)]
    assert prefix.pick(members, {B: 12}) == 0  # A 0 / 10, C 4 / 14
    assert prefix.pick(members, {B: 12}, {A: 3}) == 2  # A 3 / 10 > C 4 / 14
    assert prefix.pick(members, {B: 12}, {A: 3, C: 4}) == 0  # A 0.3 < C 8 / 14


def test_a_request_whose_prefix_nobody_holds_gets_no_overflow_pick() -> None:
    members = [member(A, slack=10.0), member(B, slack=5.0)]
    assert prefix.pick(members, {A: 0, B: 0}) is None


# --- decide() --------------------------------------------------------------------------------------------------
def snap(*members: dict) -> dict:
    return {"computed_at": NOW, "members": list(members)}


def test_decide_sends_a_request_to_the_member_holding_its_prefix() -> None:
    s = snap(member(A, slack=100.0, score=1.0), member(B, slack=10.0, running=5.0, score=0.1), member(C, 50.0))
    for seed in range(20):
        d = decide(CONFIG, s, [A, B, C], NOW, random.Random(seed), dispatch={}, prefix={B: 7, C: 1})
        assert (d.answer, d.reason, d.member_id) == (B, "prefix", B)


def test_decide_sends_the_overflow_of_a_saturated_holder_to_the_least_loaded_member() -> None:
    s = snap(
        member(A, slack=10.0, running=8.0, score=1.0),
        member(B, slack=0.0, running=50.0, score=0.02),
        member(C, slack=10.0, running=2.0, score=0.3),
    )
    for seed in range(20):  # the load pick would mostly answer A, the higher score
        d = decide(CONFIG, s, [A, B, C], NOW, random.Random(seed), dispatch={}, prefix={B: 7})
        assert (d.answer, d.reason) == (C, "prefix")


def test_decide_falls_back_to_the_load_pick_when_no_member_has_a_capacity_estimate() -> None:
    s = snap(member(A, slack=None, score=1.0), member(B, slack=None, running=50.0, score=0.02))
    d = decide(CONFIG, s, [A, B], NOW, random.Random(0), dispatch={}, prefix={B: 7})
    assert d.reason == "picked"


def test_a_holder_that_is_not_eligible_is_never_picked() -> None:
    s = snap(member(A, slack=100.0, score=1.0), member(B, slack=10.0, score=0.0))  # B scores 0: filtered out
    d = decide(CONFIG, s, [A, B], NOW, random.Random(0), dispatch={}, prefix={B: 7})
    assert d.answer == A


@pytest.mark.parametrize("hint", [None, {}, {"10.9.9.9:80": 5}])
def test_without_a_usable_hint_decide_answers_exactly_as_without_the_stage(hint: dict | None) -> None:
    s = snap(member(A, 10.0, score=0.7), member(B, 20.0, score=0.4), member(C, 30.0, score=0.9))
    for seed in range(30):
        for dispatch in (None, {A: 2}):
            plain = decide(CONFIG, s, [A, B, C], NOW, random.Random(seed), dispatch=dispatch)
            hinted = decide(CONFIG, s, [A, B, C], NOW, random.Random(seed), dispatch=dispatch, prefix=hint)
            assert hinted == plain
