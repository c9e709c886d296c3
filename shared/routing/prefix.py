"""Cache-aware pick, "sticky until saturated": send a request to the member that holds the longest part of its
prompt in its prefix (KV) cache, unless that member is saturated; then let the load pick decide.

Inputs per eligible member: how many of the request's leading prefix fingerprints it is believed to hold (the
shared prefix index; the iRule sends the fingerprints, deploy/f5/README.md section 6) and its load. Pure: the
index lookup and the recording of the answer are the caller's.

* Load is a member's utilisation of the capacity the scorer estimated (scorer/capacity.py): (running + waiting
  + decisions sent to it since its last scrape) / (running + waiting + slack). 1.0 and above means saturated
  (no slack left); the decisions already sent count, as in herd control, so a sticky member fills up between
  two scrapes as it really does.
* Holders: members whose match is at least `NEAR` x the longest match. They are treated alike, so a popular
  prefix that overflowed to a second member is spread over both instead of always refilling the first.
* The pick: the least loaded holder whose load is below `THRESHOLD`.
* Overflow: when every holder is at or past it, the least loaded member of all (ties: the longer match). Load
  counts the decisions sent since the scrape, so overflowing requests fill whatever room is left, member by
  member, instead of following the load pick's shares (scores are shares of an interval's decisions, slack is
  a count: the load pick kept sending a member more than its room while others still had some, the tail of
  chat_sessions in the simulator).
* No member holds at least `MIN_MATCH` fingerprints: no prefix pick, and the caller's load pick decides as
  for a request without fingerprints.
The constants were chosen with the routing simulator (docs/routing.md "Prefix-aware routing", the sweep).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

THRESHOLD = 1.0  # load at or past which a member is saturated for sticky routing: no slack left
NEAR = 0.9  # share of the longest match that still counts as holding the prefix
MIN_MATCH = 1  # fingerprints a member must hold for the prefix to matter


def member_load(member: Mapping, sent: int) -> float:
    """Utilisation of a snapshot member: (running + waiting + sent) / (running + waiting + slack); inf when its
    snapshot says nothing about its capacity (no slack estimate), so such a member is never sticky."""
    slack = member.get("slack")
    metrics = member.get("metrics") or {}
    if not isinstance(slack, (int, float)) or not math.isfinite(slack):
        return math.inf
    busy = 0.0
    for key in ("running_req", "waiting_queue"):
        value = metrics.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
            busy += float(value)
    capacity = busy + max(0.0, float(slack))
    if capacity <= 0.0:
        return math.inf
    return (busy + max(0, sent)) / capacity


def sticky_pick(
    matched: Sequence[int],
    loads: Sequence[float],
    threshold: float = THRESHOLD,
    near: float = NEAR,
    min_match: int = MIN_MATCH,
) -> int | None:
    """Index of the member to stick to, or None for "no prefix pick, balance by load". `matched[i]`: leading
    fingerprints member i holds; `loads[i]`: its load (member_load)."""
    best = max(matched, default=0)
    if best < max(1, min_match):
        return None
    floor = near * best
    choice, choice_key = None, None
    for i, (m, load) in enumerate(zip(matched, loads)):
        if m < floor or m < min_match or not load < threshold:
            continue
        key = (load, -m)  # least loaded; among equals the longer match
        if choice_key is None or key < choice_key:
            choice, choice_key = i, key
    return choice


def overflow_pick(matched: Sequence[int], loads: Sequence[float]) -> int | None:
    """Index of the least loaded member (ties: the longer match); None when no load is known."""
    choice, choice_key = None, None
    for i, (m, load) in enumerate(zip(matched, loads)):
        if not math.isfinite(load):
            continue
        key = (load, -m)
        if choice_key is None or key < choice_key:
            choice, choice_key = i, key
    return choice


def pick(
    members: Sequence[Mapping],
    prefix: Mapping[str, int],
    sent: Mapping[str, int] | None = None,
    threshold: float | None = None,
    near: float | None = None,
) -> int | None:
    """The prefix stage of a decision over eligible snapshot members: `prefix` maps member id -> leading
    fingerprints held (absent: none), `sent` member id -> decisions since its last scrape (herd counters)."""
    matched = [int(prefix.get(m["id"], 0) or 0) for m in members]
    if max(matched, default=0) < max(1, MIN_MATCH):
        return None
    sent = sent or {}
    loads = [member_load(m, sent.get(m["id"], 0)) for m in members]
    choice = sticky_pick(
        matched, loads, THRESHOLD if threshold is None else threshold, NEAR if near is None else near, MIN_MATCH
    )
    return choice if choice is not None else overflow_pick(matched, loads)
