"""The `saturation` scoring mode, llmsched's default: score = the member's absolute headroom, not its rank.

The original's modes normalise every metric over the pool (min-max, log ratios, z-scores), so the least
loaded member always scores high however loaded it is in absolute terms, and they push idle members past their
latency knee (spec original.md section 10: they lose to BIG-IP's least connections at high load). This mode
scores each member on its own, in requests it can still take before it saturates (`scorer.capacity`):

    slack   = estimate_slack(metrics, ratio)        # 0 when requests wait or the KV cache is past its knee
    score   = max(FLOOR, slack / max(slack over the pool's members))   when slack > 0
            = SATURATED                                                  when slack = 0 (low, still > 0)
            = 0                                                          over the hard limit (see below)

* Weighted random picking on these scores sends traffic in proportion to each member's free capacity, so
  the load settles where members are equally far from their knee, whatever their size (a 4-GPU member gets
  its larger share without any configuration); BIG-IP's member ratio scales the estimate of an idle member.
* FLOOR keeps every healthy member in rotation (no starvation, spec 11 item 2): a member with little room
  still gets a trickle, which also keeps its metrics meaningful.
* A saturated member (requests waiting) keeps SATURATED: it is avoided while anyone has room, but if everyone
  is saturated the pick still spreads over them in proportion to... nothing: equal tiny scores.
* Over the hard limit (HARD_QUEUE_PER_RUNNING x running + HARD_QUEUE_MIN requests waiting, or the KV cache
  full with requests waiting) the score is 0: such a member is not picked at all; when every candidate is
  there the decision answers `none` and BIG-IP balances with its own method (fail open).
The pool-wide division only rescales: pick probabilities depend on slack ratios, which are absolute.
Members lacking one of waiting_queue, cache_usage, running_req score None (not picked), like every mode.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from scorer.capacity import estimate_slack, metric

NAME = "saturation"
POWER = 1.0
FLOOR = 0.02            # minimum score of a member with room, relative to the roomiest member
SATURATED = 0.005       # score of a member with requests waiting, under the hard limit
HARD_QUEUE_MIN = 8.0    # waiting requests always tolerated before the hard limit...
HARD_QUEUE_PER_RUNNING = 0.5    # ...plus this many per running request
KV_FULL = 0.98          # KV usage that, with requests waiting, is over the hard limit


def over_hard_limit(metrics: Mapping[str, object]) -> bool:
    waiting = metric(metrics, "waiting_queue") or 0.0
    running = metric(metrics, "running_req") or 0.0
    cache = metric(metrics, "cache_usage") or 0.0
    if waiting <= 0.0:
        return False
    return waiting > HARD_QUEUE_MIN + HARD_QUEUE_PER_RUNNING * running or cache >= KV_FULL


def compute_scores(members: Sequence[Mapping[str, object]], weights: Mapping[str, object]) -> list[float | None]:
    """One score per member, in order; None for a member whose metrics cannot be scored. `weights` is
    accepted for the common interface and ignored: the mode has no tunable weights."""
    slacks = [estimate_slack(m, m.get("ratio", 1)) for m in members]   # type: ignore[arg-type]
    top = max((s for s in slacks if s is not None), default=0.0)
    scores: list[float | None] = []
    for member, slack in zip(members, slacks):
        if slack is None:
            scores.append(None)
        elif over_hard_limit(member):
            scores.append(0.0)
        elif slack <= 0.0:
            scores.append(SATURATED)
        else:
            scores.append(max(FLOOR, (slack / top) ** POWER))
    return scores
