import random

import pytest

from shared.routing.decide import decide
from shared.routing.herd import herd_weight


def test_no_decisions_since_the_scrape_leave_the_score_unchanged():
    assert herd_weight(0.8, 0, 5.0) == 0.8


def test_sending_a_members_whole_slack_halves_its_weight():
    assert herd_weight(0.8, 5, 5.0) == pytest.approx(0.4)
    assert herd_weight(0.8, 10, 5.0) == pytest.approx(0.8 / 3)


def test_unknown_or_tiny_slack_counts_each_decision_as_a_whole_slack():
    assert herd_weight(1.0, 1, None) == pytest.approx(0.5)
    assert herd_weight(1.0, 1, 0.2) == pytest.approx(0.5)


def test_non_positive_scores_stay_non_positive():
    assert herd_weight(0.0, 3, 2.0) == 0.0
    assert herd_weight(-0.2, 3, 2.0) == -0.2


def _snapshot():
    from shared.members import member_key
    return {"members": [{"id": mid, "key": member_key(mid.rsplit(":", 1)[0], 80), "status": "enabled",
                         "score": score, "scraped_at": 100.0, "slack": 2.0, "metrics": {}}
                        for mid, score in (("10.0.0.1:80", 0.9), ("10.0.0.2:80", 0.3))]}


def _share_of_first(config, dispatch):
    rng = random.Random(3)
    picks = [decide(config, _snapshot(), ["10.0.0.1:80", "10.0.0.2:80"], 101.0, rng, dispatch).answer
             for _ in range(4000)]
    return picks.count("10.0.0.1:80") / len(picks)


def test_decide_moves_picks_away_from_a_member_that_already_got_many_decisions():
    config = {"stale_after": 10.0, "herd_control": True}
    assert _share_of_first(config, {}) == pytest.approx(0.75, abs=0.03)
    # 0.9 / (1 + 8/2) = 0.18 vs 0.3 -> 37.5 %
    assert _share_of_first(config, {"10.0.0.1:80": 8}) == pytest.approx(0.375, abs=0.03)


def test_decide_ignores_dispatch_counts_when_herd_control_is_off():
    assert _share_of_first({"stale_after": 10.0, "herd_control": False}, {"10.0.0.1:80": 8}) == \
        pytest.approx(0.75, abs=0.03)
