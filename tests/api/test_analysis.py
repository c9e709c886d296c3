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
    assert abs(sum(r["theoretical_probabilities"].values()) - 100) < 1e-6
    assert r["overall_statistics"]["successful_selections"] == 20000
    assert r["quality_assessment"]["quality_grade"] in ("Excellent", "Good")
    assert [d["round"] for d in r["detailed_results"]] == list(range(19951, 20001))


# The original's analyze answer: keys in this order with these JSON types (its Scheduler.analyze_selection_accuracy).
# "*" stands for each member; llmsched may add keys after these, never rename, reorder or retype them.
MEMBER_DEVIATION = {
    "theoretical_percent": float,
    "actual_percent": float,
    "absolute_deviation": float,
    "relative_deviation_percent": float,
    "selection_count": int,
}
ORIGINAL_ANALYZE = {
    "pool_info": {"name": str, "partition": str, "member_count": int, "total_score": float},
    "theoretical_probabilities": {"*": float},
    "actual_probabilities": {"*": float},
    "deviation_analysis": {"*": MEMBER_DEVIATION},
    "overall_statistics": {
        "total_iterations": int,
        "successful_selections": int,
        "success_rate": float,
        "mean_absolute_deviation": float,
        "max_absolute_deviation": float,
        "min_absolute_deviation": float,
        "std_deviation": float,
    },
    "quality_assessment": {
        "quality_grade": str,
        "quality_score": float,
        "is_acceptable": bool,
        "recommendations": list,
        "summary": str,
    },
    "detailed_results": [{"round": int, "selected": str, "timestamp": int}],
}


def _shape_problems(got, shape, where: str = "") -> list[str]:
    """Where `got` leaves the original's shape: a key missing, out of order, or of another JSON type."""
    if isinstance(shape, type):
        # bool is an int subclass in Python but not in JSON: an int field must not turn into true/false.
        ok = isinstance(got, shape) and not (shape is not bool and isinstance(got, bool))
        return [] if ok else [f"{where}: {type(got).__name__} {got!r}, expected {shape.__name__}"]
    if isinstance(shape, list):
        if not isinstance(got, list) or not got:
            return [f"{where}: expected a non-empty list"]
        return [p for i, item in enumerate(got) for p in _shape_problems(item, shape[0], f"{where}[{i}]")]
    if not isinstance(got, dict):
        return [f"{where}: expected an object"]
    if list(shape) == ["*"]:
        return [p for k, v in got.items() for p in _shape_problems(v, shape["*"], f"{where}.{k}")]
    keys = list(got)[: len(shape)]
    if keys != list(shape):
        return [f"{where}: keys {list(got)}, expected {list(shape)} first, in that order"]
    return [p for k in shape for p in _shape_problems(got[k], shape[k], f"{where}.{k}")]


def test_analyze_answers_the_originals_keys_in_its_order_with_its_types(client, store):
    seed(store, {"10.0.0.1:8000": A, "10.0.0.2:8000": B})
    r = client.post("/pools/p1/Common/analyze?iterations=2000", json=BODY)
    assert r.status_code == 200
    assert list(r.json) == list(ORIGINAL_ANALYZE)
    assert _shape_problems(r.json, ORIGINAL_ANALYZE) == []
    info = r.json["pool_info"]
    assert (info["name"], info["partition"], info["member_count"]) == ("p1", "Common", 2)
    # The original's own client reads these by name (its test_probability_analysis.py).
    assert set(r.json["theoretical_probabilities"]) == set(BODY["members"])
    assert [d["timestamp"] for d in r.json["detailed_results"]] == list(range(1950, 2000))


def test_analyze_shape_check_catches_a_renamed_retyped_or_moved_key():
    good = {"a": 1, "b": {"c": "x"}}
    shape = {"a": int, "b": {"c": str}}
    assert _shape_problems(good, shape) == []
    assert _shape_problems({"b": {"c": "x"}, "a": 1}, shape)  # order
    assert _shape_problems({"a": 1.5, "b": {"c": "x"}}, shape)  # type
    assert _shape_problems({"a": True, "b": {"c": "x"}}, shape)  # bool is not an int in JSON
    assert _shape_problems({"a": 1, "b": {"grade": "x"}}, shape)  # renamed
    assert _shape_problems({"a": 1, "b": {"c": "x", "new": 1}}, shape) == []  # added beside: allowed


def test_simulate_and_analyze_with_no_members_answer_like_the_original(client, store):
    seed(store, {"10.0.0.1:8000": A, "10.0.0.2:8000": B})
    empty = {**BODY, "members": []}
    r = client.post("/pools/p1/Common/simulate?iterations=7", json=empty)
    assert (r.status_code, r.json) == (200, {"results": {}, "iterations": 7})
    r = client.post("/pools/p1/Common/analyze", json=empty)
    assert (r.status_code, r.json) == (200, {"error": "No valid intersection members"})
    # Empty pool_name / partition in the body are ignored (the path names the pool), as in the original.
    r = client.post("/pools/p1/Common/simulate?iterations=3", json={"pool_name": "", "partition": "", "members": []})
    assert (r.status_code, r.json) == (200, {"results": {}, "iterations": 3})
    # The body's shape is still checked.
    assert client.post("/pools/p1/Common/analyze", json={"members": []}).status_code == 422


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
    r = client.post("/pools/p1/Common/analyze", json={**BODY, "members": ["10.9.9.9:8000"]})
    assert r.json == {"error": "No valid intersection members"}


def test_analyze_grades_follow_the_original_thresholds():
    from llmsched.api.analysis import grade

    assert grade(0.5, 1.0, 100.0) == ("Excellent", 99.5)
    assert grade(1.5, 3.0, 100.0) == ("Good", 80 + 15 - 4.5)
    assert grade(4.0, 9.0, 95.0) == ("Fair", 60 + 20 - 16.0)
    assert grade(6.0, 20.0, 50.0) == ("Needs optimization", 30.0)
