"""Herd control: picks that account for the decisions sent to each member since its last scrape.

Between two scrapes every replica sees the same snapshot, so independent random picks keep favouring the same
members until the next scrape shows them full (so every router that scrapes also counts locally). Every decision is
counted in Redis, shared by all API replicas, and a member's count is reset when a fresh scrape of it is written.
The pick is then a weighted round robin over those shared counts: the member with the largest score / (1 + sent
since its scrape), ties broken at random. Over an interval each member gets decisions in proportion to its score, as
the original's weighted random pick does on average, but without its variance and without two replicas piling onto
the same member. The routing simulator chose this form (docs/routing.md): dividing by an estimate of the member's
room instead of 1 kept sending everything to the largest member, and a weighted random pick on the same weights
herded more."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence


def herd_weight(score: float, sent_since_scrape: int) -> float:
    """A member's claim to the next decision: its score, shared out over what it already received."""
    if score <= 0.0 or sent_since_scrape <= 0:
        return score
    return score / (1.0 + sent_since_scrape)


def herd_pick(members: Sequence[Mapping], sent: Mapping[str, int], rng: random.Random) -> int | None:
    """Index of the member with the largest herd weight (score > 0 only); the scan starts at a random member
    so ties do not always favour the first one. None when no member has a positive score."""
    if not members:
        return None
    start = rng.randrange(len(members))
    best, best_weight = None, 0.0
    for k in range(len(members)):
        i = (start + k) % len(members)
        weight = herd_weight(members[i]["score"], sent.get(members[i]["id"], 0))
        if weight > best_weight:
            best, best_weight = i, weight
    return best
