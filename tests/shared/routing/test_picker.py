import random

import pytest

from llmsched.shared.routing.picker import pick_weighted, shares


def test_pick_never_returns_an_item_with_zero_or_negative_weight():
    rng = random.Random(1)
    picks = {pick_weighted(["a", "b", "c"], [0.0, 1.0, -2.0], rng) for _ in range(2000)}
    assert picks == {"b"}


def test_pick_returns_none_when_no_weight_is_positive():
    assert pick_weighted(["a", "b"], [0.0, -1.0], random.Random(1)) is None
    assert pick_weighted([], [], random.Random(1)) is None


def test_picks_follow_the_weight_shares_within_statistical_error():
    rng = random.Random(42)
    weights = [0.6, 0.3, 0.1]
    n = 20_000
    counts = {i: 0 for i in range(3)}
    for _ in range(n):
        counts[pick_weighted([0, 1, 2], weights, rng)] += 1
    for i, w in enumerate(weights):
        sigma = (w * (1 - w) / n) ** 0.5
        assert abs(counts[i] / n - w) < 4 * sigma


def test_shares_ignore_non_positive_weights():
    assert shares([2.0, 0.0, -1.0, 2.0]) == pytest.approx([0.5, 0.0, 0.0, 0.5])
    assert shares([0.0, 0.0]) == [0.0, 0.0]
