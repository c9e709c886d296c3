import random

from llmsched.shared.routing.decide import candidate_index, decide, eligible

NOW = 1_000_000.0
CONFIG = {
    "name": "p",
    "partition": "Common",
    "pool_fallback": False,
    "stale_after": 10.0,
    "member_running_req_threshold": None,
    "member_waiting_queue_threshold": None,
}


def member(mid: str, score: float | None = 0.5, status: str = "enabled", age: float = 1.0, **metrics) -> dict:
    address, _, port = mid.rpartition(":")
    from llmsched.shared.members import member_key

    return {
        "id": mid,
        "key": member_key(address, int(port)),
        "address": address,
        "port": int(port),
        "status": status,
        "score": score,
        "scraped_at": NOW - age,
        "metrics": metrics,
    }


def snapshot(*members: dict) -> dict:
    return {"computed_at": NOW, "members": list(members)}


def answer(config, snap, candidates, seed=0):
    return decide(config, snap, candidates, NOW, random.Random(seed)).answer


def test_unknown_pool_answers_none():
    assert answer(None, None, ["10.0.0.1:80"]) == "none"


def test_pool_fallback_answers_fallback_before_anything_else():
    assert answer({**CONFIG, "pool_fallback": True}, None, ["10.0.0.1:80"]) == "fallback"


def test_pool_not_scored_yet_answers_none():
    assert answer(CONFIG, None, ["10.0.0.1:80"]) == "none"


def test_unparsable_candidates_answer_none():
    assert answer(CONFIG, snapshot(member("10.0.0.1:80")), ["garbage", "127.0.0.1:abc", ":80", "1.2.3.4:0"]) == "none"


def test_candidates_unknown_to_the_pool_are_ignored():
    snap = snapshot(member("10.0.0.1:80"))
    assert answer(CONFIG, snap, ["10.0.0.9:80"]) == "none"
    assert answer(CONFIG, snap, ["10.0.0.9:80", "10.0.0.1:80"]) == "10.0.0.1:80"


def test_pool_members_not_offered_by_bigip_are_never_chosen():
    snap = snapshot(member("10.0.0.1:80", 0.01), member("10.0.0.2:80", 0.99))
    assert {answer(CONFIG, snap, ["10.0.0.1:80"], seed) for seed in range(50)} == {"10.0.0.1:80"}


def test_route_domain_member_is_answered_as_bigip_sent_it():
    snap = snapshot(member("10.0.0.1%2:8000"))
    assert answer(CONFIG, snap, ["10.0.0.1%2:8000"]) == "10.0.0.1%2:8000"
    assert answer(CONFIG, snap, ["10.0.0.1:8000"]) == "none"


def test_ipv6_candidate_matches_any_spelling_and_is_answered_verbatim():
    snap = snapshot(member("fe80::12:8000"))
    assert answer(CONFIG, snap, ["FE80:0:0:0:0:0:0:12:8000"]) == "FE80:0:0:0:0:0:0:12:8000"


def test_members_disabled_forced_offline_or_down_on_bigip_are_never_picked():
    snap = snapshot(
        member("10.0.0.1:80", status="disabled"),
        member("10.0.0.2:80", status="forced_offline"),
        member("10.0.0.3:80", status="down"),
    )
    assert answer(CONFIG, snap, ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]) == "none"


def test_member_without_a_score_is_never_picked():
    snap = snapshot(member("10.0.0.1:80", score=None), member("10.0.0.2:80", 0.1))
    assert {answer(CONFIG, snap, ["10.0.0.1:80", "10.0.0.2:80"], s) for s in range(50)} == {"10.0.0.2:80"}


def test_stale_metrics_make_a_member_ineligible_and_all_stale_answers_none():
    snap = snapshot(member("10.0.0.1:80", age=11.0), member("10.0.0.2:80", age=2.0))
    assert {answer(CONFIG, snap, ["10.0.0.1:80", "10.0.0.2:80"], s) for s in range(50)} == {"10.0.0.2:80"}
    assert answer(CONFIG, snapshot(member("10.0.0.1:80", age=11.0)), ["10.0.0.1:80"]) == "none"


def test_thresholds_exclude_members_strictly_above_either_limit():
    config = {**CONFIG, "member_running_req_threshold": 20.0, "member_waiting_queue_threshold": 15.0}
    snap = snapshot(
        member("10.0.0.1:80", waiting_queue=10.0, running_req=5.0),
        member("10.0.0.2:80", waiting_queue=16.0, running_req=5.0),
        member("10.0.0.3:80", waiting_queue=1.0, running_req=21.0),
        member("10.0.0.4:80", waiting_queue=15.0, running_req=20.0),
    )
    picks = {answer(config, snap, ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"], s) for s in range(100)}
    assert picks == {"10.0.0.1:80", "10.0.0.4:80"}


def test_all_candidates_above_thresholds_answers_none_not_fallback():
    config = {**CONFIG, "member_waiting_queue_threshold": 1.0}
    assert answer(config, snapshot(member("10.0.0.1:80", waiting_queue=5.0)), ["10.0.0.1:80"]) == "none"


def test_only_zero_or_negative_scores_answer_none():
    snap = snapshot(member("10.0.0.1:80", 0.0), member("10.0.0.2:80", -0.3))
    assert answer(CONFIG, snap, ["10.0.0.1:80", "10.0.0.2:80"]) == "none"


def test_pool_with_no_members_answers_none():
    assert answer(CONFIG, snapshot(), ["10.0.0.1:80"]) == "none"


def test_eligible_reports_why_nothing_is_left():
    assert (
        eligible(CONFIG, snapshot(member("10.0.0.1:80", status="disabled")), ["10.0.0.1:80"], NOW).reason
        == "no candidate enabled on BIG-IP"
    )


def test_first_spelling_of_a_duplicated_candidate_wins():
    members = [{"id": "10.0.0.1:80", "key": "10.0.0.1:80"}]
    assert candidate_index(["10.0.0.1:80", "10.0.0.1:80"], members) == {"10.0.0.1:80": "10.0.0.1:80"}
