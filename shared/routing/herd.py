"""Herd control: weigh in the decisions sent to a member since its last scrape.

Between two scrapes every replica sees the same snapshot, so without this they would all keep favouring the same
member until the next scrape shows it full (peers.md section 0: every router that scrapes also counts locally).
Each decision is counted in Redis (shared by all replicas) and the count is reset when a fresh scrape of the
member is written; a member that already received `slack` requests since its scrape (the requests it could take
before saturating, estimated by the scorer) has its weight halved, and so on: weight = score / (1 + sent / slack).
"""
from __future__ import annotations

UNKNOWN_SLACK = 1.0     # no capacity estimate: every request sent counts as much as the member's whole headroom


def herd_weight(score: float, sent_since_scrape: int, slack: float | None) -> float:
    if score <= 0.0 or sent_since_scrape <= 0:
        return score
    room = slack if slack is not None and slack > UNKNOWN_SLACK else UNKNOWN_SLACK
    return score / (1.0 + sent_since_scrape / room)
