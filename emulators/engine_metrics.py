"""`/metrics` bodies of the engine emulator: the vLLM V1 and SGLang expositions (docs/scraper.md).

vLLM: every engine metric carries `{engine="<dp index>",model_name="..."}`; one series per DP engine; the KV
gauge is `vllm:gpu_cache_usage_perc` (kv_name old), both names with the same value (both), or
`vllm:kv_cache_usage_perc` (new), and the prefix-cache and TPOT names follow the same version split.
SGLang: multiprocess-mode exposition (no `_created`, `_sum` first); scheduler metrics labelled
engine_type/model_name/moe_ep_rank/pp_rank/tp_rank (+ dp_rank with DP attention), repeated per TP rank when
"all schedulers" is on; tokenizer metrics labelled engine_type/model_name only.
"""

from __future__ import annotations

from collections.abc import Callable

from llmsched.emulators.engine_sim import FINISH_REASONS, EngineCore
from llmsched.emulators.engine_state import SGLANG_PREFIXES, EngineState
from llmsched.emulators.expo import Family, Histogram, Series, render

KEY_GAUGES = ("num_requests_waiting", "kv_cache_usage_perc", "gpu_cache_usage_perc", "num_queue_reqs", "token_usage")


def _merged(hists: list[Histogram]) -> Histogram:
    out = Histogram(hists[0].bounds)
    for h in hists:
        out.counts = [a + b for a, b in zip(out.counts, h.counts)]
        out.sum += h.sum
        out.count += h.count
    return out


# -- vLLM ---------------------------------------------------------------------------------------------------
def vllm_families(state: EngineState) -> list[Family]:
    spec = state.spec
    old, new = spec.kv_name in ("old", "both"), spec.kv_name in ("both", "new")

    def per_engine(name: str, kind: str, help_text: str, value: Callable[[EngineCore], float]) -> Family:
        return Family(
            f"vllm:{name}",
            kind,
            help_text,
            [
                Series({"engine": str(c.index), "model_name": spec.model}, value(c), created=c.created)
                for c in state.cores
            ],
        )

    def hist(name: str, help_text: str, pick: Callable[[EngineCore], Histogram]) -> Family:
        return Family(
            f"vllm:{name}",
            "histogram",
            help_text,
            [
                Series({"engine": str(c.index), "model_name": spec.model}, hist=pick(c), created=c.created)
                for c in state.cores
            ],
        )

    fams = [
        per_engine(
            "num_requests_running", "gauge", "Number of requests in model execution batches.", lambda c: c.num_running
        ),
        per_engine(
            "num_requests_waiting", "gauge", "Number of requests waiting to be processed.", lambda c: c.num_waiting
        ),
    ]
    if old:
        fams.append(
            per_engine(
                "gpu_cache_usage_perc", "gauge", "GPU KV-cache usage. 1 means 100 percent usage.", lambda c: c.kv_usage
            )
        )
    if new:
        fams.append(
            per_engine(
                "kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", lambda c: c.kv_usage
            )
        )
    for prefix, on in (("gpu_prefix_cache", old), ("prefix_cache", new)):
        if on:
            fams.append(
                per_engine(
                    f"{prefix}_queries",
                    "counter",
                    "Prefix cache queries, in terms of number of queried tokens.",
                    lambda c: c.counters["prefix_queries"],
                )
            )
            fams.append(
                per_engine(
                    f"{prefix}_hits",
                    "counter",
                    "Prefix cache hits, in terms of number of cached tokens.",
                    lambda c: c.counters["prefix_hits"],
                )
            )
    fams += [
        per_engine(
            "num_preemptions",
            "counter",
            "Cumulative number of preemption from the engine.",
            lambda c: c.counters["preemptions"],
        ),
        per_engine(
            "prompt_tokens", "counter", "Number of prefill tokens processed.", lambda c: c.counters["prompt_tokens"]
        ),
        per_engine(
            "generation_tokens",
            "counter",
            "Number of generation tokens processed.",
            lambda c: c.counters["generation_tokens"],
        ),
    ]
    reasons = FINISH_REASONS if new else FINISH_REASONS[:3]  # "error" only on newer versions
    fams.append(
        Family(
            "vllm:request_success",
            "counter",
            "Count of successfully processed requests.",
            [
                Series(
                    {"engine": str(c.index), "finished_reason": r, "model_name": spec.model},
                    c.finished[r],
                    created=c.created,
                )
                for c in state.cores
                for r in reasons
            ],
        )
    )
    fams.append(hist("time_to_first_token_seconds", "Histogram of time to first token in seconds.", lambda c: c.ttft))
    if new:
        fams.append(
            hist("inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", lambda c: c.itl)
        )
    else:
        fams.append(
            hist("time_per_output_token_seconds", "Histogram of time per output token in seconds.", lambda c: c.itl)
        )
    fams += [
        hist("e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", lambda c: c.e2e),
        hist(
            "request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            lambda c: c.queue_time,
        ),
        Family(
            "vllm:cache_config_info",
            "gauge",
            "Information of the LLMEngine CacheConfig",
            [
                Series(
                    {
                        "block_size": str(spec.block_size),
                        "cache_dtype": "auto",
                        "enable_prefix_caching": "True",
                        "engine": str(c.index),
                        "gpu_memory_utilization": "0.9",
                        "num_gpu_blocks": str(c.kv_capacity // spec.block_size),
                    },
                    1.0,
                )
                for c in state.cores
            ],
        ),
    ]
    return fams


# -- SGLang -------------------------------------------------------------------------------------------------
def sglang_families(state: EngineState) -> list[Family]:
    spec = state.spec
    p = SGLANG_PREFIXES[spec.sglang_prefix]
    tp_ranks = range(spec.tp) if spec.all_schedulers else range(1)

    def sched_labels(c: EngineCore, tp_rank: int) -> dict[str, str]:
        labels = {
            "engine_type": "unified",
            "model_name": spec.model,
            "moe_ep_rank": "0",
            "pp_rank": "0",
            "tp_rank": str(tp_rank),
        }
        if spec.dp > 1:
            labels["dp_rank"] = str(c.index)
        return labels

    def gauge(name: str, help_text: str, value: Callable[[EngineCore], float], pid: bool = False) -> Family:
        series = []
        for c in state.cores:
            for r in tp_ranks:
                labels = sched_labels(c, r)
                if pid:  # gauges without a multiprocess_mode get a pid label in multiprocess mode
                    labels["pid"] = str(4000 + c.index * spec.tp + r)
                series.append(Series(labels, value(c)))  # every TP rank repeats the same state
        return Family(f"{p}{name}", "gauge", help_text, series)

    tok_labels = {"engine_type": "unified", "model_name": spec.model}

    def counter(name: str, help_text: str, key: str) -> Family:
        return Family(
            f"{p}{name}", "counter", help_text, [Series(dict(tok_labels), sum(c.counters[key] for c in state.cores))]
        )

    def tok_hist(name: str, help_text: str, pick: Callable[[EngineCore], Histogram]) -> Family:
        return Family(
            f"{p}{name}",
            "histogram",
            help_text,
            [Series(dict(tok_labels), hist=_merged([pick(c) for c in state.cores]))],
        )

    fams = [
        gauge("num_running_reqs", "The number of running requests.", lambda c: c.num_running),
        gauge("num_queue_reqs", "The number of requests in the waiting queue.", lambda c: c.num_waiting),
        gauge("token_usage", "The token usage.", lambda c: c.kv_usage),
        gauge("num_used_tokens", "The number of used tokens.", lambda c: round(c.used_tokens)),
        gauge("max_total_num_tokens", "Maximum total number of tokens in the KV cache pool.", lambda c: c.kv_capacity),
        gauge("gen_throughput", "The generation throughput (token/s).", lambda c: round(c.gen_throughput(), 2)),
        gauge("cache_hit_rate", "The prefix cache hit rate.", lambda c: c.last_prefill_hit_rate),
        gauge("num_retracted_reqs", "The number of retracted requests.", lambda c: 0.0, pid=True),
        counter("prompt_tokens", "Number of prefill tokens processed.", "prompt_tokens"),
        counter("generation_tokens", "Number of generation tokens processed.", "generation_tokens"),
        counter("cached_tokens", "Number of cached prompt tokens.", "prefix_hits"),
        Family(
            f"{p}num_requests",
            "counter",
            "Number of requests processed.",
            [Series(dict(tok_labels), sum(sum(c.finished.values()) for c in state.cores))],
        ),
        tok_hist("time_to_first_token_seconds", "Histogram of time to first token in seconds.", lambda c: c.ttft),
        tok_hist("e2e_request_latency_seconds", "Histogram of End-to-end request latency in seconds", lambda c: c.e2e),
    ]
    return fams


# -- entry point --------------------------------------------------------------------------------------------
def quirky(text: str) -> str:
    """Valid but unusual text-format output, for parser tests: families in reverse order,
    blank lines and free `# ` comments between them, and an extra NaN gauge."""
    blocks = [b for b in text.split("# HELP ") if b]
    out = ["# emulator: quirky exposition (reverse family order)\n\n"]
    for block in reversed(blocks):
        out.append("# HELP " + block + "\n# a free-form comment line\n\n")
    out.append("# TYPE emulator_nan_gauge gauge\nemulator_nan_gauge NaN\n")
    return "".join(out)


def metrics_text(state: EngineState, partial: bool = False) -> str:
    """The exposition for the current state; `partial` drops the waiting-queue and KV gauges."""
    if state.spec.engine == "sglang":
        fams, multiprocess = sglang_families(state), True  # SGLang always runs prometheus multiprocess
    else:
        fams, multiprocess = vllm_families(state), state.spec.multiprocess
    if partial:
        fams = [f for f in fams if f.name.split(":")[-1].removeprefix("sglang_") not in KEY_GAUGES]
    return render(fams, multiprocess)
