"""simulate / analyze: repeated picks over one pool state, and how well picks follow the score shares.

Both answer with the original's JSON shapes (keys, order and types: docs/api.md), so its own clients read them;
keys llmsched adds stand beside the original's, never instead of them. The grading (Excellent / Good / Fair / Needs
optimization) and its quality scores are the original's. Unlike the original, theory and practice use the same
eligible members (after every filter), and a pool whose eligible scores sum to 0 is reported, not a 500.
"""

from __future__ import annotations

import random
import statistics
from collections import Counter

import orjson

from llmsched.api.validation import RequestError, ScheduleRequest, parse_schedule_request
from llmsched.shared.routing.decide import Eligible
from llmsched.shared.routing.picker import pick_weighted

# Reasons of `eligible` that mean "no candidate is a member of the pool": the original's "no intersection".
_NO_INTERSECTION = frozenset(
    {"pool not fetched or scored yet", "no valid candidate", "no candidate is a known pool member"}
)
NO_INTERSECTION = "No valid intersection members"
_DETAILED_RESULTS = 50


def what_if_request(raw: bytes) -> ScheduleRequest:
    """The body of simulate / analyze. Its shape is checked like select's (422), but, as in the original, empty
    `pool_name`, `partition` or `members` are accepted: the path names the pool, and no members is no intersection."""
    try:
        return parse_schedule_request(raw)
    except RequestError as exc:
        if exc.status != 400:  # 400 is only raised for empty values, after the shape passed
            raise
    body = orjson.loads(raw)
    return ScheduleRequest(body["pool_name"], body["partition"], body["members"], body.get("model"))


def _picks(pool: Eligible, iterations: int, rng: random.Random) -> list[str | None]:
    weights = pool.weights
    return [pick_weighted(pool.answers, weights, rng) for _ in range(iterations)]


def simulate(pool: Eligible, iterations: int, rng: random.Random) -> dict[str, int]:
    counts = Counter(p for p in _picks(pool, iterations, rng) if p is not None)
    return dict(counts)


def grade(mean: float, worst: float, success_rate: float) -> tuple[str, float]:
    if mean < 1.0 and worst < 2.0 and success_rate > 99:
        return "Excellent", 95 + (5 - mean)
    if mean < 2.0 and worst < 5.0 and success_rate > 95:
        return "Good", 80 + (15 - mean * 3)
    if mean < 5.0 and worst < 10.0 and success_rate > 90:
        return "Fair", 60 + (20 - mean * 4)
    return "Needs optimization", max(0, 60 - mean * 5)


def recommendations(mean: float, worst: float, success_rate: float, std: float) -> list[str]:
    found = []
    if mean > 3.0:
        found.append("Consider increasing test iterations for more stable results")
    if worst > 8.0:
        found.append("Check if score value distribution is too extreme")
    if success_rate < 95:
        found.append("Check system for concurrency or other abnormal issues")
    if std > 2.0:
        found.append("Large deviation fluctuation, recommend checking algorithm stability")
    return found


def error_for(pool: Eligible) -> dict:
    """analyze's 200 error body when nothing can be picked: the original's text when no candidate is in the pool."""
    if pool.reason in _NO_INTERSECTION:
        return {"error": NO_INTERSECTION}
    return {"error": f"No eligible member: {pool.reason}"}


def analyze(
    pool: Eligible,
    iterations: int,
    rng: random.Random,
    name: str,
    partition: str,
    extra_pool_info: dict | None = None,
) -> dict:
    """The original's analyze report over the eligible members (there must be at least one)."""
    total_score = sum(pool.weights)
    # Raw floats, computed as the original does: (score / total) * 100.
    theory = {a: (s / total_score) * 100 for a, s in zip(pool.answers, pool.weights)}
    picks = _picks(pool, iterations, rng)
    counts = Counter(p for p in picks if p is not None)
    successful = sum(counts.values())
    actual = {a: (counts.get(a, 0) / successful) * 100 if successful else 0.0 for a in pool.answers}
    deviations = {}
    for a in pool.answers:
        absolute = abs(actual[a] - theory[a])
        relative = (absolute / theory[a] * 100) if theory[a] > 0 else 0
        deviations[a] = {
            "theoretical_percent": round(theory[a], 4),
            "actual_percent": round(actual[a], 4),
            "absolute_deviation": round(absolute, 4),
            "relative_deviation_percent": round(relative, 4),
            "selection_count": counts.get(a, 0),
        }
    absolutes = [d["absolute_deviation"] for d in deviations.values()]
    mean, worst, best = round(statistics.mean(absolutes), 4), round(max(absolutes), 4), round(min(absolutes), 4)
    # One member: the original's `round(0, 4)`, an int 0.
    std = round(statistics.stdev(absolutes) if len(absolutes) > 1 else 0, 4)
    success_rate = (successful / iterations) * 100
    label, score = grade(mean, worst, success_rate)
    # Only rounds that picked a member are listed; `timestamp` is the round's 0-based index, as in the original.
    detailed = [{"round": i + 1, "selected": p, "timestamp": i} for i, p in enumerate(picks) if p is not None]
    return {
        "pool_info": {
            "name": name,
            "partition": partition,
            "member_count": len(pool.members),
            "total_score": round(total_score, 6),
            **(extra_pool_info or {}),
        },
        "theoretical_probabilities": theory,
        "actual_probabilities": actual,
        "deviation_analysis": deviations,
        "overall_statistics": {
            "total_iterations": iterations,
            "successful_selections": successful,
            "success_rate": success_rate,
            "mean_absolute_deviation": mean,
            "max_absolute_deviation": worst,
            "min_absolute_deviation": best,
            "std_deviation": std,
        },
        "quality_assessment": {
            "quality_grade": label,
            "quality_score": round(score, 2),
            "is_acceptable": label in ("Excellent", "Good"),
            "recommendations": recommendations(mean, worst, success_rate, std),
            "summary": f"Mean deviation {mean}%, max deviation {worst}%, quality grade: {label}",
        },
        "detailed_results": detailed[-_DETAILED_RESULTS:],
    }
