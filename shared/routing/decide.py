"""One decision: the pool's routing config + its score snapshot + BIG-IP's candidates -> an answer.

The answer is what the iRule understands: a member in the string form BIG-IP sent it, `none` (BIG-IP balances
with its own method) or `fallback` (the pool's fallback pool). Pure: time and randomness come in as arguments.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from llmsched.shared.members import member_key, parse_candidate
from llmsched.shared.routing import filters
from llmsched.shared.routing import prefix as prefix_stage
from llmsched.shared.routing.herd import herd_pick
from llmsched.shared.routing.picker import pick_weighted

NONE = "none"
FALLBACK = "fallback"


@dataclass
class Eligible:
    """The members a pick may choose from, each with the candidate string BIG-IP used for it."""

    answers: list[str] = field(default_factory=list)
    members: list[dict] = field(default_factory=list)
    reason: str = ""  # why the list is empty, when it is

    @property
    def weights(self) -> list[float]:
        return [m["score"] for m in self.members]


def expected_weights(members: list[dict]) -> list[float]:
    """Weights whose shares are each member's expected share of decisions over a scrape interval: its score,
    with or without herd control (the shared round robin hands out decisions in proportion to scores)."""
    return [m["score"] for m in members]


@dataclass(frozen=True)
class Decision:
    answer: str  # ip:port as BIG-IP sent it, "none" or "fallback"
    reason: str  # "picked", "fallback", "unknown pool", "no fresh member", ...
    member_id: str | None = None  # our id of the chosen member (for dispatch accounting)


def candidate_index(candidates: Sequence[str], known: Mapping[str, str] | None = None) -> dict[str, str]:
    """member key -> the candidate string BIG-IP sent (first spelling wins); unparsable entries skipped.
    `known` maps member ids to keys: a candidate spelled exactly like a member's id skips parsing, which is
    most of a decision's CPU otherwise (IPv6 canonicalisation)."""
    index: dict[str, str] = {}
    known = known or {}
    for text in candidates:
        key = known.get(text) if isinstance(text, str) else None
        if key is None:
            parsed = parse_candidate(text)
            if parsed is None:
                continue
            key = member_key(*parsed)
        index.setdefault(key, text)
    return index


def eligible(config: dict | None, snapshot: dict | None, candidates: Sequence[str], now: float) -> Eligible:
    """Filter the pool's members down to those a pick may choose (fallback is not handled here)."""
    if config is None:
        return Eligible(reason="unknown pool")
    if snapshot is None:
        return Eligible(reason="pool not fetched or scored yet")
    pool_members = snapshot.get("members", ())
    index = candidate_index(candidates, {m["id"]: m["key"] for m in pool_members if "key" in m})
    if not index:
        return Eligible(reason="no valid candidate")
    offered = [m for m in pool_members if m.get("key") in index]
    if not offered:
        return Eligible(reason="no candidate is a known pool member")
    stages = (
        ("no candidate enabled on BIG-IP", filters.enabled_on_bigip),
        ("no candidate has usable metrics", filters.scored),
        ("every candidate's metrics are stale", filters.fresh(now, float(config.get("stale_after") or 0.0))),
        (
            "every candidate is above the thresholds",
            filters.under_thresholds(
                config.get("member_running_req_threshold"), config.get("member_waiting_queue_threshold")
            ),
        ),
        ("no candidate has a positive score", filters.positive_score),
    )
    members = offered
    for reason, keep in stages:
        members = keep(members)
        if not members:
            return Eligible(reason=reason)
    return Eligible(answers=[index[m["key"]] for m in members], members=members)


def decide(
    config: dict | None,
    snapshot: dict | None,
    candidates: Sequence[str],
    now: float,
    rng: random.Random,
    dispatch: Mapping[str, int] | None = None,
    prefix: Mapping[str, int] | None = None,
) -> Decision:
    """`dispatch`: decisions sent to each member id since its last scrape (all replicas, from Redis). With
    herd control on and counts available the pick is the shared weighted round robin (llmsched.shared.routing.herd);
    otherwise the original's weighted random pick, probability score / sum of scores. `prefix`: member id ->
    leading prompt fingerprints it holds (the prefix index); the sticky pick (llmsched.shared.routing.prefix)
    goes first and the load pick decides when it has no answer."""
    if config is not None and config.get("pool_fallback"):
        return Decision(FALLBACK, "pool_fallback is set")
    pool = eligible(config, snapshot, candidates, now)
    if not pool.members:
        return Decision(NONE, pool.reason)
    if prefix:
        sticky = prefix_stage.pick(pool.members, prefix, dispatch)
        if sticky is not None:
            return Decision(pool.answers[sticky], "prefix", pool.members[sticky]["id"])
    if dispatch is not None and config.get("herd_control"):
        position = herd_pick(pool.members, dispatch, rng)
    else:
        position = pick_weighted(range(len(pool.members)), pool.weights, rng)
    if position is None:
        return Decision(NONE, "no candidate has a positive score")
    return Decision(pool.answers[position], "picked", pool.members[position]["id"])
