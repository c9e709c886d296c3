"""How many more requests a member can take before it saturates ("slack"), from one scrape of its metrics.

The `saturation` mode (scorer/saturation.py) scores members by their slack, and every snapshot member carries
it (shown by `llmsched status` and the UI). Pure functions: a member's metrics
dict (`waiting_queue`, `cache_usage` in [0, 1],
`running_req`) and its BIG-IP ratio in, a number of requests out; for an idle member, also what its peers measure.

An engine admits a request only while it has a free batch slot and KV-cache room for it; otherwise the request
waits. So its capacity, in requests, is the smaller of two limits (docs/routing.md derives and tests this):
* KV: each running request holds on average cache_usage / running_req of the cache, so about
  running_req x KV_KNEE / cache_usage requests fit below the knee. The knee sits below 1.0 because running
  requests keep growing (one token per step) and vLLM preempts when the cache is full. Not measurable on the
  member itself while (almost) nothing runs on it: then the footprint its busy peers in the pool measure now
  stands in (`PeerFootprint`: the same traffic goes to every member of a pool). In tokens when the engines
  publish their KV size (`kv_capacity_tokens`: vLLM's num_gpu_blocks x block_size, SGLang's
  max_total_num_tokens), so the idle member is sized by its own KV pool; else in BIG-IP ratio units (the
  administrator's statement of relative size). Only when no peer is measurable either (the whole pool idle)
  is it assumed to have room for `IDLE_CAPACITY` x ratio requests, a probe's worth, until its next scrape:
  assuming its slots flooded an idle small GPU with long prompts (a handful of them fill its cache), and a
  probe's worth beside a busy peer's measured room sent a benchmark's first wave to the members already loaded.
* batch slots: vLLM's `max_num_seqs` is not exported. Its defaults are 256, and 1024 on GPUs of >= 70 GiB other
  than A100 (vllm/engine/arg_utils.py); we assume 256 x ratio, and the next default up once a member runs more
  (it evidently allows more). BIG-IP's member ratio is the administrator's statement of relative capacity, so
  it scales this assumption, never the measured KV limit.
slack = capacity - running - waiting, at least 0: requests already waiting take the room first, so a member
with a real queue has none, while the one or two a busy engine shows between two steps cost little.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llmsched.scorer.values import finite_metric

KV_KNEE = 0.9  # KV-cache usage at which admissions start to stall and latency turns up
SLOT_DEFAULTS = (256.0, 1024.0)  # vLLM's default max_num_seqs values, smallest first
MIN_RUNNING = 1.0  # below this many running requests the KV footprint per request is not measurable
IDLE_CAPACITY = 8.0  # requests (x ratio) assumed to fit on a member whose KV footprint is not measurable yet
MIN_CACHE = 1e-4  # a KV usage this small is measurement noise, not a footprint
KV_SIZE = "kv_capacity_tokens"  # member key: the KV pool in tokens its engine publishes (None when it does not)


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


def kv_size(metrics: Mapping[str, object]) -> float | None:
    """The KV pool in tokens the member's engine publishes, or None."""
    size = metric(metrics, KV_SIZE)
    return size if size else None


def footprint(metrics: Mapping[str, object]) -> tuple[float, float] | None:
    """(running, cache_usage) of a member whose KV footprint per request is measurable, else None."""
    cache = metric(metrics, "cache_usage")
    running = metric(metrics, "running_req")
    if cache is None or running is None or running < MIN_RUNNING or cache < MIN_CACHE:
        return None
    return running, min(cache, 1.0)


@dataclass(frozen=True)
class PeerFootprint:
    """KV held per running request on a pool's measurable members, pooled (their KV in use over their running
    requests), to size the members that run (almost) nothing."""

    tokens: float | None  # tokens per request, over the members that publish their KV size
    ratio: float | None  # KV fraction x BIG-IP ratio per request, over every measurable member


def peer_footprint(members: Sequence[Mapping[str, object]]) -> PeerFootprint:
    """What a pool's measurable members say about a request's KV footprint (members: metrics + `ratio`)."""
    tokens_used = tokens_running = ratio_used = ratio_running = 0.0
    for member in members:
        measured = footprint(member)
        if measured is None:
            continue
        running, cache = measured
        ratio_used += cache * capacity_weight(member.get("ratio", 1))
        ratio_running += running
        size = kv_size(member)
        if size is not None:
            tokens_used += cache * size
            tokens_running += running
    return PeerFootprint(
        tokens=tokens_used / tokens_running if tokens_running else None,
        ratio=ratio_used / ratio_running if ratio_running else None,
    )


def idle_capacity(metrics: Mapping[str, object], ratio: object, peers: PeerFootprint | None) -> float:
    """KV room, in requests, of a member whose own footprint is not measurable: its KV size (tokens, else
    ratio) over what a request holds on its peers; IDLE_CAPACITY x ratio when no peer is measurable."""
    size = kv_size(metrics)
    if peers is not None and peers.tokens and size is not None:
        return size * KV_KNEE / peers.tokens
    if peers is not None and peers.ratio:
        return capacity_weight(ratio) * KV_KNEE / peers.ratio
    return IDLE_CAPACITY * capacity_weight(ratio)


def estimate_capacity(metrics: Mapping[str, object], ratio: object, peers: PeerFootprint | None = None) -> float | None:
    """Requests the member can run at once before it saturates; None when a metric is missing. `peers`: the
    pool's measured footprint (peer_footprint), which sizes the member when its own is not measurable."""
    cache = metric(metrics, "cache_usage")
    running = metric(metrics, "running_req")
    if cache is None or running is None:
        return None
    by_slots = slot_limit(running, ratio)
    if running < MIN_RUNNING:
        return min(by_slots, idle_capacity(metrics, ratio, peers))
    if cache < MIN_CACHE:
        return by_slots
    return min(by_slots, running * KV_KNEE / min(cache, 1.0))


def estimate_slack(metrics: Mapping[str, object], ratio: object, peers: PeerFootprint | None = None) -> float | None:
    """Requests the member can still take before it saturates; None when its metrics cannot say (a metric
    missing). 0.0 means saturated: requests wait, or the KV cache is past the knee."""
    waiting = metric(metrics, "waiting_queue")
    capacity = estimate_capacity(metrics, ratio, peers)
    if waiting is None or capacity is None:
        return None
    running = metric(metrics, "running_req") or 0.0
    return max(0.0, capacity - running - waiting)
