"""How many more requests a member can take before it saturates ("slack"), from one scrape of its metrics.

The `saturation` mode (scorer/saturation.py) scores members by their slack, and every snapshot member carries
it (shown by `llmsched status` and the UI). Pure functions: a member's metrics
dict (`waiting_queue`, `cache_usage` in [0, 1],
`running_req`) and its BIG-IP ratio in, a number of requests out.

An engine admits a request only while it has a free batch slot and KV-cache room for it; otherwise the request
waits. So its capacity, in requests, is the smaller of two limits (docs/routing.md derives and tests this):
* KV: each running request holds on average cache_usage / running_req of the cache, so about
  running_req x KV_KNEE / cache_usage requests fit below the knee. The knee sits below 1.0 because running
  requests keep growing (one token per step) and vLLM preempts when the cache is full. Not measurable while
  (almost) nothing runs: then we cannot tell how much KV the prompts we send will take (a long-prompt
  workload fills a small GPU's cache with a handful of requests, far below its batch slots), so an idle member
  is assumed to have room for `IDLE_CAPACITY` x ratio requests, a probe's worth, until its next scrape measures
  the footprint. Assuming its slots instead flooded an idle small GPU with long prompts in the simulator.
* batch slots: vLLM's `max_num_seqs` is not exported. Its defaults are 256, and 1024 on GPUs of >= 70 GiB other
  than A100 (vllm/engine/arg_utils.py); we assume 256 x ratio, and the next default up once a member runs more
  (it evidently allows more). BIG-IP's member ratio is the administrator's statement of relative capacity, so
  it scales this assumption, never the measured KV limit.
slack = capacity - running - waiting, at least 0: requests already waiting take the room first, so a member
with a real queue has none, while the one or two a busy engine shows between two steps cost little.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from llmsched.scorer.values import finite_metric

KV_KNEE = 0.9  # KV-cache usage at which admissions start to stall and latency turns up
SLOT_DEFAULTS = (256.0, 1024.0)  # vLLM's default max_num_seqs values, smallest first
MIN_RUNNING = 1.0  # below this many running requests the KV footprint per request is not measurable
IDLE_CAPACITY = 8.0  # requests (x ratio) assumed to fit on a member whose KV footprint is not measurable yet
MIN_CACHE = 1e-4  # a KV usage this small is measurement noise, not a footprint


def metric(metrics: Mapping[str, object], key: str) -> float | None:
    """metrics[key] as a finite, non-negative float, or None."""
    value = finite_metric(metrics, key)
    return None if value is None else max(0.0, value)


def capacity_weight(ratio: object) -> float:
    """BIG-IP's member ratio as a capacity multiplier: 1 when unset, below 1 or not a number."""
    if isinstance(ratio, bool):
        return 1.0
    try:
        value = float(ratio)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 1.0
    return value if math.isfinite(value) and value >= 1.0 else 1.0


def slot_limit(running: float, ratio: object) -> float:
    """The batch-slot limit we assume: the smallest vLLM default (x ratio) the member is not already above;
    above them all, room for the smallest default more."""
    weight = capacity_weight(ratio)
    for slots in SLOT_DEFAULTS:
        if running <= slots * weight:
            return slots * weight
    return running + SLOT_DEFAULTS[0] * weight


def estimate_capacity(metrics: Mapping[str, object], ratio: object) -> float | None:
    """Requests the member can run at once before it saturates; None when a metric is missing."""
    cache = metric(metrics, "cache_usage")
    running = metric(metrics, "running_req")
    if cache is None or running is None:
        return None
    by_slots = slot_limit(running, ratio)
    if running < MIN_RUNNING:
        return min(by_slots, IDLE_CAPACITY * capacity_weight(ratio))
    if cache < MIN_CACHE:
        return by_slots
    return min(by_slots, running * KV_KNEE / min(cache, 1.0))


def estimate_slack(metrics: Mapping[str, object], ratio: int) -> float | None:
    """Requests the member can still take before it saturates; None when its metrics cannot say (a metric
    missing). 0.0 means saturated: requests wait, or the KV cache is past the knee."""
    waiting = metric(metrics, "waiting_queue")
    capacity = estimate_capacity(metrics, ratio)
    if waiting is None or capacity is None:
        return None
    running = metric(metrics, "running_req") or 0.0
    return max(0.0, capacity - running - waiting)
