import random
from collections import Counter

import pytest

from llmsched.shared.members import member_key
from llmsched.shared.routing.decide import decide
from llmsched.shared.routing.herd import herd_pick, herd_weight


def test_no_decisions_since_the_scrape_leave_the_score_unchanged():
    assert herd_weight(0.8, 0) == 0.8


def test_each_decision_since_the_scrape_shares_the_score_out_further():
    assert herd_weight(0.8, 1) == pytest.approx(0.4)
    assert herd_weight(0.9, 2) == pytest.approx(0.3)


def test_non_positive_scores_stay_non_positive_and_are_never_picked():
    assert herd_weight(0.0, 3) == 0.0 and herd_weight(-0.2, 3) == -0.2
    members = [{"id": "a", "score": 0.0}, {"id": "b", "score": -1.0}]
    assert herd_pick(members, {}, random.Random(1)) is None
    assert herd_pick([], {}, random.Random(1)) is None


def test_pick_goes_to_the_largest_score_per_decision_received():
    members = [{"id": "a", "score": 0.9}, {"id": "b", "score": 0.3}]
    assert herd_pick(members, {}, random.Random(1)) == 0
    assert herd_pick(members, {"a": 3}, random.Random(1)) == 1  # 0.9 / 4 < 0.3


def test_ties_are_broken_at_random():
    members = [{"id": m, "score": 0.5} for m in "abcd"]
    assert {herd_pick(members, {}, random.Random(seed)) for seed in range(40)} == {0, 1, 2, 3}


def test_shared_counts_give_each_member_its_score_share_exactly_over_an_interval():
    members = [{"id": "a", "score": 0.6}, {"id": "b", "score": 0.3}, {"id": "c", "score": 0.1}]
    sent: Counter = Counter()
    rng = random.Random(5)
    for _ in range(1000):
        sent[members[herd_pick(members, sent, rng)]["id"]] += 1
    assert [sent[m] for m in "abc"] == pytest.approx([600, 300, 100], abs=2)


def _snapshot():
    return {
        "members": [
            {
                "id": mid,
                "key": member_key(mid.rsplit(":", 1)[0], 80),
                "status": "enabled",
                "score": score,
                "scraped_at": 100.0,
                "metrics": {},
            }
            for mid, score in (("10.0.0.1:80", 0.9), ("10.0.0.2:80", 0.3))
        ]
    }


def test_decide_uses_the_shared_counts_when_herd_control_is_on():
    config = {"stale_after": 10.0, "herd_control": True}
    candidates = ["10.0.0.1:80", "10.0.0.2:80"]
    assert decide(config, _snapshot(), candidates, 101.0, random.Random(1), {}).answer == "10.0.0.1:80"
    assert decide(config, _snapshot(), candidates, 101.0, random.Random(1), {"10.0.0.1:80": 3}).answer == "10.0.0.2:80"


def test_decide_keeps_the_weighted_random_pick_when_herd_control_is_off():
    config = {"stale_after": 10.0, "herd_control": False}
    rng = random.Random(3)
    picks = [
        decide(config, _snapshot(), ["10.0.0.1:80", "10.0.0.2:80"], 101.0, rng, {"10.0.0.1:80": 8}).answer
        for _ in range(4000)
    ]
    assert picks.count("10.0.0.1:80") / len(picks) == pytest.approx(0.75, abs=0.03)
