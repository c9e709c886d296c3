"""Weighted random pick: member i is chosen with probability weight_i / sum of weights."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def pick_weighted(items: Sequence[T], weights: Sequence[float], rng: random.Random) -> T | None:
    """One item drawn with probability proportional to its weight; weights <= 0 are never drawn."""
    total = 0.0
    for w in weights:
        if w > 0.0:
            total += w
    if total <= 0.0:
        return None
    point = rng.random() * total
    last = None
    for item, w in zip(items, weights):
        if w <= 0.0:
            continue
        last = item
        point -= w
        if point < 0.0:
            return item
    return last  # float rounding left a sliver at the end: it belongs to the last positive item


def shares(weights: Sequence[float]) -> list[float]:
    """The probability of each item under pick_weighted."""
    positive = [w if w > 0.0 else 0.0 for w in weights]
    total = sum(positive)
    return [w / total if total > 0.0 else 0.0 for w in positive]
