"""simulate and analyze: bounded iterations, real picks, no 500 where the original had one."""

from llmsched.shared.config_model import FallbackConfig

from tests.helpers import seed

A = {"waiting_queue": 0.0, "cache_usage": 0.2, "running_req": 1.0}
B = {"waiting_queue": 4.0, "cache_usage": 0.6, "running_req": 3.0}
BODY = {"pool_name": "ignored", "partition": "ignored", "members": ["10.0.0.1:8000", "10.0.0.2:8000"]}


def test_simulate_counts_picks_per_member_using_the_path_pool(client, store):
    seed(store, {"10.0.0.1:8000": A, "10.0.0.2:8000": B})
    r = client.post("/pools/p1/Common/simulate?iterations=500", json=BODY).json
    assert r["iterations"] == 500 and sum(r["results"].values()) == 500
    assert set(r["results"]) <= set(BODY["members"])


def test_simulate_ignores_pool_fallback_like_the_original(client, store):
    seed(store, {"10.0.0.1:8000": A}, fallback=FallbackConfig(pool_fallback=True))
    r = client.post("/pools/p1/Common/simulate?iterations=10", json=BODY).json
    assert r["results"] == {"10.0.0.1:8000": 10}


def test_simulate_with_nothing_eligible_returns_empty_results(client, store):
    assert client.post("/pools/p1/Common/simulate", json=BODY).json == {"results": {}, "iterations": 100}


def test_iterations_above_the_cap_zero_or_not_a_number_are_400_with_a_message(client, store):
    for value in ("100001", "0", "-5", "abc"):
        for endpoint in ("simulate", "analyze"):
            r = client.post(f"/pools/p1/Common/{endpoint}?iterations={value}", json=BODY)
            assert r.status_code == 400 and "iterations" in r.json["detail"], (endpoint, value)


def test_analyze_reports_theory_practice_and_a_grade(client, store):
    seed(store, {"10.0.0.1:8000": A, "10.0.0.2:8000": B})
    r = client.post("/pools/p1/Common/analyze?iterations=20000", json=BODY).json
    assert set(r) >= {
        "pool_info",
        "theoretical_probabilities",
        "actual_probabilities",
        "deviation_analysis",
        "overall_statistics",
        "quality_assessment",
        "detailed_results",
    }
    assert abs(sum(r["theoretical_probabilities"].values()) - 100) < 1e-6
    assert r["overall_statistics"]["successful_selections"] == 20000
    assert r["quality_assessment"]["grade"] in ("Excellent", "Good")
    assert len(r["detailed_results"]) == 50


def test_analyze_unknown_pool_and_no_eligible_member_are_errors_not_500(client, store):
    assert client.post("/pools/nope/Common/analyze", json=BODY).json == {"error": "Pool not found: nope:Common"}
    seed(
        store,
        {
            "10.0.0.1:8000": {"waiting_queue": 9.0, "cache_usage": 1.0, "running_req": 1.0},
            "10.0.0.2:8000": {"waiting_queue": 0.0, "cache_usage": 0.0, "running_req": 1.0},
        },
    )
    r = client.post("/pools/p1/Common/analyze", json={**BODY, "members": ["10.0.0.1:8000"]})
    assert r.status_code == 200 and r.json["error"].startswith("No eligible member")


def test_analyze_grades_follow_the_original_thresholds():
    from llmsched.api.analysis import grade

    assert grade(0.5, 1.0, 100.0) == ("Excellent", 99.5)
    assert grade(1.5, 3.0, 100.0) == ("Good", 80 + 15 - 4.5)
    assert grade(4.0, 9.0, 95.0) == ("Fair", 60 + 20 - 16.0)
    assert grade(6.0, 20.0, 50.0) == ("Needs optimization", 30.0)
