"""The `saturation` scoring mode, llmsched's default: score = absolute headroom, not rank within the pool.

The original's modes normalise every metric over the pool (min-max, log ratios, z-scores), so the least loaded
member always scores high however loaded it is in absolute terms: they push idle members past their latency
knee and lose to BIG-IP's least connections at high load (docs/routing.md, section 5). This mode scores each
member on its own capacity, in requests (`llmsched.scorer.capacity`; docs/routing.md has the derivation and the
simulator runs behind every constant):

    capacity = requests it can run before it saturates (KV cache below its knee, batch slots)
    slack    = capacity - running - waiting, at least 0
    raw      = (slack / (1 + waiting) + BASE x capacity) x (1 - cache_usage)
    score    = 0                                when over the hard limit (below)
             = max(FLOOR, raw / largest raw)    otherwise

* slack: weighted-random picks on it send new requests where there is free room, in proportion to it, so
  members settle equally far from their knee whatever their size: a 4-GPU member gets its larger share
  without configuration, and load BIG-IP cannot see (clients that bypass it) is counted, as engines report it.
* / (1 + waiting): vLLM V1 records num_requests_waiting after its scheduler ran, so a waiting request is one
  the scheduler turned away: no batch slot, no KV room, or no token budget left in the step. The last one is a
  compute limit that neither KV usage nor running requests show: long prompts' chunked prefills use up the
  budget of a large GPU while its KV cache and slots still look nearly empty, so its slack claims dozens of
  requests it would only queue, and a small GPU beside it, whose KV is the limit, got a fraction of the traffic
  it serves well (long_prompts_mixed_fleet in the simulator). The room the two estimates show is discounted by
  the evidence against it: one request turned away halves it, a real queue all but removes it. Members that
  turn nothing away (every ShareGPT scenario at its load) score exactly as without it. The snapshot's `slack`
  (status, the prefix stage's load) stays the undiscounted count: a member holding a request's prefix is still
  the best place for it with a short queue (docs/routing.md 8.4).
* BASE x capacity: when everyone is (nearly) full, slack says nothing; traffic then follows capacity, the
  best guess of throughput, instead of jumping to whichever member has one free slot (that flip-flop on
  stale data is what made a relative ranking oscillate in the simulator at 95 % load).
* (1 - cache_usage): a KV cache that fills up means preemption and recomputation, the steepest part of an
  engine's latency curve, so free KV weighs in continuously, not only past the knee.
* FLOOR keeps every healthy member in rotation (no starvation), which also keeps its
  metrics meaningful; the division by the largest raw value only rescales (picks depend on ratios).
* Hard limit: a queue longer than HARD_QUEUE_MIN + HARD_QUEUE_PER_RUNNING x running, or requests waiting
  on a full KV cache (thrashing). Such a member scores 0 and is not picked; when every candidate is there
  the decision answers `none` and BIG-IP balances with its own method (fail open, as peers learned).
* Saturated pool: when the members together hold at least as many requests as they can run together
  (running + waiting summed >= capacities summed) and are of alike size (capacities within ALIKE of each
  other), every member scores 0 and the decision fails open the same way. The queue then exists wherever
  requests go: concentrating on the members with room only moves it, and onto BIG-IP's own traffic when part
  of the load bypasses BIG-IP, while BIG-IP's least connections counts its own open requests exactly and at
  once. Least connections gives every member the same number of requests, which is a balance only among
  members that can run about the same number; beside a much smaller member it buries that one, so a pool of
  unlike members keeps the pick (docs/routing.md 4 has the variants and their numbers).
Members lacking waiting_queue, cache_usage or running_req score None (never picked), like every mode.
BIG-IP's member ratio, when the member dict carries it (`ratio`), scales the capacity assumed for it; the KV size
its engine publishes (`kv_capacity_tokens`), with its peers' footprint, sizes it while it runs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llmsched.scorer.capacity import PeerFootprint, estimate_capacity, metric, peer_footprint

NAME = "saturation"
BASE = 0.1  # share of capacity that keeps counting when slack is gone
FLOOR = 0.02  # minimum score of a member under the hard limit, relative to the best member
HARD_QUEUE_MIN = 8.0  # waiting requests always tolerated before the hard limit...
HARD_QUEUE_PER_RUNNING = 0.5  # ...plus this many per running request
KV_FULL = 0.98  # KV usage that, with requests waiting, is over the hard limit
ALIKE = 2.0  # largest ratio of two members' capacities for which least connections is a balance among them


def over_hard_limit(metrics: Mapping[str, object]) -> bool:
    waiting = metric(metrics, "waiting_queue") or 0.0
    if waiting <= 0.0:
        return False
    running = metric(metrics, "running_req") or 0.0
    cache = metric(metrics, "cache_usage") or 0.0
    return waiting > HARD_QUEUE_MIN + HARD_QUEUE_PER_RUNNING * running or cache >= KV_FULL


@dataclass(frozen=True)
class Headroom:
    capacity: float  # requests it can run before it saturates (llmsched.scorer.capacity)
    busy: float  # running + waiting
    raw: float  # the unnormalised score: (slack / (1 + waiting) + BASE x capacity) x free KV fraction


def headroom(metrics: Mapping[str, object], peers: PeerFootprint | None = None) -> Headroom | None:
    """A member's capacity, load and unnormalised score; None when not scorable. `peers`: the pool's measured
    KV footprint per request, which sizes a member that runs nothing (llmsched.scorer.capacity)."""
    capacity = estimate_capacity(metrics, metrics.get("ratio", 1), peers)
    waiting = metric(metrics, "waiting_queue")
    if capacity is None or waiting is None:
        return None
    busy = (metric(metrics, "running_req") or 0.0) + waiting
    cache = min(1.0, metric(metrics, "cache_usage") or 0.0)
    slack = max(0.0, capacity - busy) / (1.0 + waiting)
    return Headroom(capacity, busy, (slack + BASE * capacity) * (1.0 - cache))


def pool_saturated(measured: Sequence[Headroom]) -> bool:
    """Alike members holding at least as many requests as they can run together: fail open."""
    if not measured:
        return False
    capacities = [h.capacity for h in measured]
    alike = max(capacities) <= ALIKE * min(capacities)
    return alike and sum(h.busy for h in measured) >= sum(capacities)


def compute_scores(members: Sequence[Mapping[str, object]], weights: Mapping[str, object]) -> list[float | None]:
    """One score per member, in order; None for a member whose metrics cannot be scored. `weights` is
    accepted for the common interface and ignored: the mode has no tunable weights."""
    peers = peer_footprint(members)
    measured = [headroom(m, peers) for m in members]
    scorable = [h for h in measured if h is not None]
    top = max((h.raw for h in scorable), default=0.0)
    fail_open = pool_saturated(scorable)  # every member scores 0 (module docstring)
    scores: list[float | None] = []
    for member, h in zip(members, measured):
        if h is None:
            scores.append(None)
        elif fail_open or over_hard_limit(member):
            scores.append(0.0)
        else:
            scores.append(max(FLOOR, h.raw / top) if top > 0.0 else FLOOR)
    return scores
