"""simulate / analyze: repeated picks over one pool state, and how well picks follow the score shares.

The grading (Excellent / Good / Fair / Needs optimization) and its quality scores are the original's (spec 5.7).
Unlike the original, theory and practice use the same eligible members (after every filter), and a pool whose
eligible scores sum to 0 is reported, not a 500.
"""

from __future__ import annotations

import random
import statistics
from collections import Counter
from collections.abc import Callable

from llmsched.shared.routing.decide import Eligible
from llmsched.shared.routing.picker import pick_weighted, shares


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
        return "Good", 80 + (15 - 3 * mean)
    if mean < 5.0 and worst < 10.0 and success_rate > 90:
        return "Fair", 60 + (20 - 4 * mean)
    return "Needs optimization", max(0.0, 60 - 5 * mean)


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


def analyze(pool: Eligible, iterations: int, rng: random.Random, clock: Callable[[], float]) -> dict:
    theory = {a: round(s * 100, 4) for a, s in zip(pool.answers, shares(pool.weights))}
    picks = _picks(pool, iterations, rng)
    counts = Counter(p for p in picks if p is not None)
    successful = sum(counts.values())
    actual = {a: round(counts.get(a, 0) / successful * 100, 4) if successful else 0.0 for a in pool.answers}
    deviations = {}
    for a in pool.answers:
        absolute = round(abs(actual[a] - theory[a]), 4)
        relative = round(absolute / theory[a] * 100, 4) if theory[a] else 0.0
        deviations[a] = {
            "theoretical_percent": theory[a],
            "actual_percent": actual[a],
            "absolute_deviation": absolute,
            "relative_deviation_percent": relative,
            "selection_count": counts.get(a, 0),
        }
    absolutes = [d["absolute_deviation"] for d in deviations.values()]
    mean, worst, best = (round(statistics.fmean(absolutes), 4), round(max(absolutes), 4), round(min(absolutes), 4))
    std = round(statistics.stdev(absolutes), 4) if len(absolutes) > 1 else 0.0
    success_rate = round(successful / iterations * 100, 4)
    label, score = grade(mean, worst, success_rate)
    now = clock()
    return {
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
            "grade": label,
            "quality_score": round(score, 2),
            "is_acceptable": label in ("Excellent", "Good"),
            "recommendations": recommendations(mean, worst, success_rate, std),
            "summary": f"Mean deviation {mean}%, max deviation {worst}%, quality grade: {label}",
        },
        "detailed_results": [{"round": i + 1, "selected": p, "timestamp": now} for i, p in enumerate(picks)][-50:],
    }
