"""Engine metric maps: which Prometheus names give a member's waiting queue, KV-cache usage and running requests,
and how the series of one endpoint combine into one value each. Pure functions: exposition text + engine config
-> the engine fields of a metrics document (docs/scraper.md explains every rule).

Names tried, per base engine and metric type, in this order (the original's order): the keys of the user
variants of `engines_metrics_keys` whose name starts with that engine, in YAML order, then the built-in keys.
The first name with at least one finite sample is used. Built-ins (`BUILTIN_KEYS`):
* vllm: `vllm:num_requests_waiting`; `vllm:kv_cache_usage_perc`, then the pre-0.12 `vllm:gpu_cache_usage_perc`;
  `vllm:num_requests_running`;
* sglang: `num_queue_reqs`, `token_usage`, `num_running_reqs`, each with the `sglang:` and the `sglang_` prefix.

Combining series of one name (data parallel, several models, SGLang TP copies):
* series that differ only in a replica label (`tp_rank`, `pp_rank`, `moe_ep_rank`, `pid`) are copies of one
  scheduler's state (SGLang `--enable-metrics-for-all-schedulers`): they count once, with their largest value;
* every other distinct label set (vLLM `engine`, SGLang `dp_rank`, `model_name`, ...) is its own source:
  waiting and running are SUMMED over sources, KV usage is AVERAGED (as vLLM's own aggregate log line) and its
  maximum is kept as `kv_cache_max` (the fullest engine is the one that preempts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from llmsched.collectors.prom import Exposition, Sample, finite, parse_exposition
from llmsched.shared.config_model import EngineVariant

METRIC_TYPES: tuple[str, ...] = ("waiting_queue", "cache_usage", "running_req")
BASE_ENGINES: tuple[str, ...] = ("vllm", "sglang")
BUILTIN_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "vllm": {
        "waiting_queue": ("vllm:num_requests_waiting",),
        # renamed in vLLM 0.9.2 (both names until 0.11, old one removed in 0.12): the new name first
        "cache_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
        "running_req": ("vllm:num_requests_running",),
    },
    "sglang": {
        # `sglang:` or `sglang_` depending on the server's prometheus_client and content negotiation
        "waiting_queue": ("sglang:num_queue_reqs", "sglang_num_queue_reqs"),
        "cache_usage": ("sglang:token_usage", "sglang_token_usage"),
        "running_req": ("sglang:num_running_reqs", "sglang_num_running_reqs"),
    },
}
ALL_BUILTIN_KEYS = frozenset(k for table in BUILTIN_KEYS.values() for keys in table.values() for k in keys)
REPLICA_LABELS = frozenset({"tp_rank", "pp_rank", "moe_ep_rank", "pid"})

# Prefix (KV) cache truth from the engines, per base engine, names in trial order. Counters count
# tokens: `hits` served from the prefix cache, `queries` looked up (vLLM) or all prompt tokens (SGLang), so
# Δhits / Δqueries between two scrapes is the hit rate of that interval. `hit_rate` is the engine's own gauge
# (vLLM V0 before 0.8: gpu_prefix_cache_hit_rate; SGLang: the last prefill batch only, 0 on decode batches,
# so noisy). `capacity` gives the KV pool in tokens: vLLM's info gauge has it as labels (num_gpu_blocks x
# block_size), SGLang's gauge as its value. Sources: vllm/v1/metrics/loggers.py (prefix_cache_* since 0.9,
# gpu_prefix_cache_* before), python/sglang/srt/metrics/collector.py.
PREFIX_CACHE_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "vllm": {
        "hits": ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),
        "queries": ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"),
        "hit_rate": ("vllm:gpu_prefix_cache_hit_rate",),
        "capacity": ("vllm:cache_config_info",),
    },
    "sglang": {
        "hits": ("sglang:cached_tokens_total", "sglang_cached_tokens_total"),
        "queries": ("sglang:prompt_tokens_total", "sglang_prompt_tokens_total"),
        "hit_rate": ("sglang:cache_hit_rate", "sglang_cache_hit_rate"),
        "capacity": ("sglang:max_total_num_tokens", "sglang_max_total_num_tokens"),
    },
}
PREFIX_CACHE_NAMES = frozenset(k for table in PREFIX_CACHE_KEYS.values() for keys in table.values() for k in keys)


@dataclass(frozen=True)
class Candidate:
    key: str
    owner: str  # the variant a hit on this key reveals: a user variant, or the base engine for built-in keys


@dataclass(frozen=True)
class EngineMap:
    engine: str
    candidates: Mapping[str, tuple[Candidate, ...]]  # metric type -> names in trial order
    variant_order: tuple[str, ...] = ()  # this engine's user variants, YAML order
    names: frozenset[str] = frozenset()
    wanted: frozenset[str] = frozenset()  # the names a body is parsed for: `names` and its PREFIX_CACHE_KEYS

    def describe(self) -> str:
        return ", ".join(c.key for t in METRIC_TYPES for c in self.candidates[t])


@dataclass(frozen=True)
class Reading:
    """What one body says about one member; `error` set means the scrape must be recorded as failed."""

    engine: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    kv_cache_max: float | None = None
    detected_variant: str | None = None
    detection_status: str = "failed"
    error: str | None = None
    keys: dict[str, str] = field(default_factory=dict)  # metric type -> name used (for logs)
    prefix_cache: PrefixCacheReading | None = None  # None: the engine exposes none of it

    def doc_fields(self) -> dict:
        return {
            "metrics": dict(self.metrics),
            "kv_cache_max": self.kv_cache_max,
            "engine": self.engine,
            "detected_variant": self.detected_variant,
            "detection_status": self.detection_status,
            "prefix_cache": self.prefix_cache.doc() if self.prefix_cache is not None else None,
        }


def build_engine_maps(variants: Sequence[EngineVariant] = ()) -> dict[str, EngineMap]:
    """Candidate names per base engine: user variant keys (YAML order, deduplicated), then the built-ins.

    A key owns a variant name only if no built-in lists it: a variant that repeats standard keys (the README's
    `vllm_ascend`) must not relabel a plain vLLM server (the original's quirk)."""
    maps: dict[str, EngineMap] = {}
    for engine in BASE_ENGINES:
        user = [v for v in variants if v.base_engine == engine]
        owner: dict[str, str] = {}
        for v in user:
            for t in METRIC_TYPES:
                key = getattr(v, t)
                if key and key not in ALL_BUILTIN_KEYS:
                    owner.setdefault(key, v.name)
        candidates: dict[str, tuple[Candidate, ...]] = {}
        for t in METRIC_TYPES:
            keys = [getattr(v, t) for v in user if getattr(v, t)] + list(BUILTIN_KEYS[engine][t])
            unique = list(dict.fromkeys(keys))
            candidates[t] = tuple(Candidate(k, owner.get(k, engine)) for k in unique)
        names = frozenset(c.key for cs in candidates.values() for c in cs)
        prefix_names = frozenset(k for keys in PREFIX_CACHE_KEYS[engine].values() for k in keys)
        maps[engine] = EngineMap(engine, candidates, tuple(v.name for v in user), names, names | prefix_names)
    return maps


def combine(samples: Sequence[Sample]) -> list[float]:
    """One value per source: series that differ only in replica labels are copies, counted once (their max)."""
    if len(samples) == 1:  # one series, one source (the usual engine without data parallelism)
        return [samples[0].value]
    by_source: dict[tuple[tuple[str, str], ...], float] = {}
    for s in samples:
        source = tuple(sorted((k, v) for k, v in s.labels.items() if k not in REPLICA_LABELS))
        prev = by_source.get(source)
        by_source[source] = s.value if prev is None else max(prev, s.value)
    return list(by_source.values())


@dataclass
class _Extraction:
    engine: str
    metrics: dict[str, float] = field(default_factory=dict)
    kv_cache_max: float | None = None
    used: dict[str, Candidate] = field(default_factory=dict)
    malformed: str | None = None


def _extract(expo: Exposition, emap: EngineMap) -> _Extraction:
    out = _Extraction(emap.engine)
    for t in METRIC_TYPES:
        for cand in emap.candidates[t]:
            if (b := expo.first_bad(cand.key)) is not None:
                # A broken line of a name we would read may hide a series: a sum without it would look healthy.
                out.malformed = out.malformed or f"malformed line {b.number} of {cand.key}: {b.reason}"
                break
            values = combine(finite(expo.get(cand.key)))
            if not values:
                continue  # absent, or only NaN/Inf: try the next name
            out.used[t] = cand
            if t == "cache_usage":
                out.metrics[t] = sum(values) / len(values)
                out.kv_cache_max = max(values)
            else:
                out.metrics[t] = float(sum(values))
            break
    return out


def detection_status(found: int, was_ok: bool) -> str:
    """ok: all three metrics; partial: some; degraded: some, after this member had all three; failed: none."""
    if found == len(METRIC_TYPES):
        return "ok"
    if found == 0:
        return "failed"
    return "degraded" if was_ok else "partial"


def _variant(ext: _Extraction, emap: EngineMap) -> str:
    owners = {c.owner for c in ext.used.values()} - {emap.engine}
    for name in emap.variant_order:  # deterministic: the earliest variant in YAML order wins
        if name in owners:
            return name
    return emap.engine


def _wanted(maps: Mapping[str, EngineMap], engines: Sequence[str]) -> frozenset[str]:
    return frozenset().union(*(maps[e].wanted for e in engines))


def read_engine(text: str, engine_type: str, maps: Mapping[str, EngineMap], was_ok: bool = False) -> Reading:
    """The engine fields of one member's metrics document from its `/metrics` body.

    `engine_type` is vllm, sglang or auto (both tried; the engine with more metrics found wins, vLLM on a tie);
    `was_ok` says this member had all three metrics before, which turns a partial reading into `degraded`."""
    engines = BASE_ENGINES if engine_type == "auto" else (engine_type,)
    unknown = [e for e in engines if e not in maps]
    if unknown:
        raise ValueError(f"engine_type {engine_type!r}: no metric map for {', '.join(unknown)}")
    expo = parse_exposition(text, maps[engines[0]].wanted if len(engines) == 1 else _wanted(maps, engines))
    fixed = None if engine_type == "auto" else engine_type
    results = [_extract(expo, maps[e]) for e in engines]
    best = max(results, key=lambda r: (len(r.metrics), r.malformed is None, -engines.index(r.engine)))
    if best.malformed:
        return Reading(fixed or best.engine, error=best.malformed)
    if not best.metrics:
        looked = "; ".join(maps[e].describe() for e in engines)
        return Reading(fixed, error=f"no engine metric found (looked for {looked})")
    emap = maps[best.engine]
    return Reading(
        engine=best.engine,
        metrics=best.metrics,
        kv_cache_max=best.kv_cache_max,
        detected_variant=_variant(best, emap),
        detection_status=detection_status(len(best.metrics), was_ok),
        keys={t: c.key for t, c in best.used.items()},
        prefix_cache=read_prefix_cache(expo, best.engine).or_none(),
    )


# -- prefix cache truth ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PrefixCacheReading:
    """What one body says about a member's prefix cache; None = the engine does not expose it."""

    hits_total: float | None = None  # tokens served from the cache, summed over engines (a counter)
    queries_total: float | None = None  # tokens looked up, summed over engines (a counter)
    hit_rate: float | None = None  # the engine's own gauge, mean over engines
    capacity_tokens: float | None = None  # the KV pool in tokens, summed over engines
    block_size: int | None = None  # vLLM's KV block size in tokens

    def or_none(self) -> PrefixCacheReading | None:
        return None if self == PrefixCacheReading() else self

    def doc(self) -> dict:
        """The scrape document's `prefix_cache` (shared/keys.py `pool_metrics`; the prefix index sizes each
        member's LRU from `capacity_tokens`)."""
        return {
            "hits_total": self.hits_total,
            "queries_total": self.queries_total,
            "hit_rate": self.hit_rate,
            "capacity_tokens": self.capacity_tokens,
            "block_size": self.block_size,
        }


def _summed(expo: Exposition, names: Sequence[str]) -> float | None:
    for name in names:
        values = combine(finite(expo.get(name)))
        if values:
            return float(sum(values))
    return None


def _vllm_capacity(samples: Sequence[Sample]) -> tuple[float | None, int | None]:
    """Sum of num_gpu_blocks x block_size over engines of `vllm:cache_config_info`; the block size seen."""
    per_engine: dict[str, tuple[int, int]] = {}
    for s in samples:
        try:
            blocks, size = int(s.labels["num_gpu_blocks"]), int(s.labels["block_size"])
        except (KeyError, ValueError):
            continue  # a label set without the numbers (they vary by version) says nothing
        if blocks > 0 and size > 0:
            per_engine[s.labels.get("engine", "")] = (blocks, size)
    if not per_engine:
        return None, None
    return float(sum(b * z for b, z in per_engine.values())), max(z for _, z in per_engine.values())


def read_prefix_cache(expo: Exposition, engine: str) -> PrefixCacheReading:
    """A member's prefix-cache counters, gauge and KV capacity from a body parsed with `PREFIX_CACHE_NAMES`."""
    keys = PREFIX_CACHE_KEYS.get(engine)
    if keys is None:
        return PrefixCacheReading()
    rates: list[float] = []
    for name in keys["hit_rate"]:
        rates = combine(finite(expo.get(name)))
        if rates:
            break
    if engine == "vllm":
        capacity, block_size = _vllm_capacity(expo.get(keys["capacity"][0]))
    else:
        capacity, block_size = _summed(expo, keys["capacity"]), None
    return PrefixCacheReading(
        hits_total=_summed(expo, keys["hits"]),
        queries_total=_summed(expo, keys["queries"]),
        hit_rate=sum(rates) / len(rates) if rates else None,
        capacity_tokens=capacity,
        block_size=block_size,
    )
