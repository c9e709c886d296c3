"""One decision: the pool's routing config + its score snapshot + BIG-IP's candidates -> an answer.

The answer is what the iRule understands: a member in the string form BIG-IP sent it, `none` (BIG-IP balances
with its own method) or `fallback` (the pool's fallback pool). Pure: time and randomness come in as arguments.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from llmsched.shared.members import member_key, parse_candidate
from llmsched.shared.routing import filters
from llmsched.shared.routing import prefix as prefix_stage
from llmsched.shared.routing.herd import herd_pick
from llmsched.shared.routing.picker import pick_weighted
from llmsched.shared.routing.reasons import Reason

NONE = "none"
FALLBACK = "fallback"


@dataclass
class Eligible:
    """The members a pick may choose from, each with the candidate string BIG-IP used for it."""

    answers: list[str] = field(default_factory=list)
    members: list[dict] = field(default_factory=list)
    reason: Reason | None = None  # why the list is empty, when it is

    @property
    def weights(self) -> list[float]:
        """Each member's expected share of decisions over a scrape interval is its weight's share, with or
        without herd control (the shared round robin hands out decisions in proportion to scores)."""
        return [m["score"] for m in self.members]


@dataclass(frozen=True)
class Decision:
    answer: str  # ip:port as BIG-IP sent it, "none" or "fallback"
    reason: Reason
    member_id: str | None = None  # our id of the chosen member (for dispatch accounting)


def candidate_index(candidates: Sequence[str], members: Sequence[Mapping]) -> dict[str, str]:
    """member key -> the candidate string BIG-IP sent (first spelling wins), for candidates that are members.

    A candidate spelled exactly like a member's id or key is found without parsing (BIG-IP spells members the
    way we stored them). Any other spelling is parsed only when its port is one of the pool's ports, and at most
    one parse per pool member: whatever a request holds, its cost is bounded by the pool, not by the request."""
    known: dict[str, str] = {}
    for m in members:
        if "key" in m:
            known[m["key"]] = m["key"]
            known[m["id"]] = m["key"]
    ports = {key.rpartition(":")[2] for key in known.values()}
    budget = len(members)
    index: dict[str, str] = {}
    for text in candidates:
        key = known.get(text)
        if key is None:
            if budget <= 0 or text.rpartition(":")[2] not in ports:
                continue
            budget -= 1
            parsed = parse_candidate(text)
            key = member_key(*parsed) if parsed is not None else None
            if key is None or key not in known:
                continue
        index.setdefault(key, text)
    return index


def eligible(config: dict | None, snapshot: dict | None, candidates: Sequence[str], now: float) -> Eligible:
    """Filter the pool's members down to those a pick may choose (fallback is not handled here). Only the
    freshness stage depends on `now`: the result holds until fresh_until() of the same inputs."""
    if config is None:
        return Eligible(reason=Reason.UNKNOWN_POOL)
    if snapshot is None:
        return Eligible(reason=Reason.NOT_SCORED)
    pool_members = snapshot.get("members", ())
    index = candidate_index(candidates, pool_members)
    if not index:
        return Eligible(reason=Reason.NOT_MEMBERS)
    offered = [m for m in pool_members if m.get("key") in index]
    stages = (
        (Reason.NOT_ENABLED, filters.enabled_on_bigip),
        (Reason.NO_METRICS, filters.scored),
        (Reason.STALE, filters.fresh(now, float(config.get("stale_after") or 0.0))),
        (
            Reason.ABOVE_THRESHOLDS,
            filters.under_thresholds(
                config.get("member_running_req_threshold"), config.get("member_waiting_queue_threshold")
            ),
        ),
        (Reason.NO_POSITIVE_SCORE, filters.positive_score),
    )
    members = offered
    for reason, keep in stages:
        members = keep(members)
        if not members:
            return Eligible(reason=reason)
    return Eligible(answers=[index[m["key"]] for m in members], members=members)


def fresh_until(config: dict | None, snapshot: dict | None, now: float) -> float:
    """Until when eligible(config, snapshot, ..., now) gives the same result: the first moment a member that is
    fresh now turns stale (members never turn fresh with time alone)."""
    if config is None or snapshot is None:
        return math.inf
    stale_after = float(config.get("stale_after") or 0.0)
    ends = [(m.get("scraped_at") or 0.0) + stale_after for m in snapshot.get("members", ())]
    return min((end for end in ends if end >= now), default=math.inf)


def decide(
    config: dict | None,
    snapshot: dict | None,
    candidates: Sequence[str],
    now: float,
    rng: random.Random,
    dispatch: Mapping[str, int] | None = None,
    prefix: Mapping[str, int] | None = None,
    pool: Eligible | None = None,
) -> Decision:
    """`dispatch`: decisions sent to each member id since its last scrape (all replicas). With herd control on
    and counts available the pick is the shared weighted round robin (llmsched.shared.routing.herd); otherwise
    the original's weighted random pick, probability score / sum of scores. `prefix`: member id -> leading prompt
    fingerprints it holds (the prefix index); the sticky pick (llmsched.shared.routing.prefix) goes first and the
    load pick decides when it has no answer. `pool`: eligible(config, snapshot, candidates, now) when the caller
    already has it (the API keeps it per snapshot and candidate list); computed here otherwise."""
    if config is not None and config.get("pool_fallback"):
        return Decision(FALLBACK, Reason.FALLBACK)
    if pool is None:
        pool = eligible(config, snapshot, candidates, now)
    if config is None or not pool.members:
        return Decision(NONE, pool.reason or Reason.UNKNOWN_POOL)
    if prefix:
        sticky = prefix_stage.pick(pool.members, prefix, dispatch)
        if sticky is not None:
            return Decision(pool.answers[sticky], Reason.PREFIX, pool.members[sticky]["id"])
    if dispatch is not None and config.get("herd_control"):
        position = herd_pick(pool.members, dispatch, rng)
    else:
        position = pick_weighted(range(len(pool.members)), pool.weights, rng)
    if position is None:
        return Decision(NONE, Reason.NO_POSITIVE_SCORE)
    return Decision(pool.answers[position], Reason.PICKED, pool.members[position]["id"])
