"""A realistic vLLM 0.10 `/metrics` body for the scrape benchmark: the metric families a vLLM 0.10 server exposes
(vllm/v1/metrics/loggers.py of 0.10.x) with one engine, plus what its API server adds
(prometheus_fastapi_instrumentator's http_* families) and prometheus_client's process_* and python_* collectors.

Rendered with the emulators' writer (client_python's byte layout: sorted labels, `_total`, `_created` families).
Mostly histograms, as on a real server; the scheduler reads 4 of its lines.
"""

from __future__ import annotations

import random

from llmsched.emulators.expo import Family, Histogram, Series, render

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
LABELS = {"engine": "0", "model_name": MODEL}
CREATED = 1754000000.123456

TTFT = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
        160.0, 640.0, 2560.0]  # fmt: skip
TPOT = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0]
LATENCY = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0,
           960.0, 1920.0, 7680.0]  # fmt: skip
TOKENS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000]  # 1-2-5 to max_model_len
ITERATION = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
HIGHR = [0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 7.5, 10.0, 30.0,
         60.0]  # fmt: skip
HANDLERS = ("/v1/chat/completions", "/v1/completions", "/metrics", "/health", "/v1/models")


def _hist(bounds: list[float], rng: random.Random, scale: float, n: int = 1200) -> Histogram:
    h = Histogram([float(b) for b in bounds])
    for _ in range(n):
        h.observe(rng.expovariate(1.0 / scale))
    return h


def _one(labels: dict[str, str], **kw: object) -> list[Series]:
    return [Series(labels, created=CREATED, **kw)]  # type: ignore[arg-type]


def vllm_010_families(waiting: float = 2.0, running: float = 7.0, kv: float = 0.3127) -> list[Family]:
    rng = random.Random(10)
    gauge = [
        Family("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.",
               [Series(LABELS, running)]),
        Family("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.",
               [Series(LABELS, waiting)]),
        Family("vllm:gpu_cache_usage_perc", "gauge", "GPU KV-cache usage. 1 means 100 percent usage.",
               [Series(LABELS, kv)]),
        Family("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.",
               [Series(LABELS, kv)]),
    ]  # fmt: skip
    counters = [
        ("gpu_prefix_cache_queries", "GPU prefix cache queries, in terms of number of queried tokens.", 1048576.0),
        ("gpu_prefix_cache_hits", "GPU prefix cache hits, in terms of number of cached tokens.", 412672.0),
        ("prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.", 1048576.0),
        ("prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", 412672.0),
        ("num_preemptions", "Cumulative number of preemption from the engine.", 3.0),
        ("prompt_tokens", "Number of prefill tokens processed.", 2864125.0),
        ("generation_tokens", "Number of generation tokens processed.", 513377.0),
    ]
    fams = gauge + [Family(f"vllm:{n}", "counter", h, _one(LABELS, value=v)) for n, h, v in counters]
    fams.append(
        Family(
            "vllm:request_success",
            "counter",
            "Count of successfully processed requests.",
            [Series({**LABELS, "finished_reason": r}, v, created=CREATED) for r, v in
             (("stop", 1184.0), ("length", 57.0), ("abort", 2.0))],
        )
    )  # fmt: skip
    hists = [
        ("iteration_tokens_total", "Histogram of number of tokens per engine_step.", ITERATION, 300.0),
        ("time_to_first_token_seconds", "Histogram of time to first token in seconds.", TTFT, 0.07),
        ("time_per_output_token_seconds", "Histogram of time per output token in seconds.", TPOT, 0.03),
        ("e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", LATENCY, 4.0),
        ("request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", LATENCY, 0.2),
        ("request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request.", LATENCY, 3.8),
        ("request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.", LATENCY, 0.1),
        ("request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", LATENCY, 3.7),
        ("request_prompt_tokens", "Number of prefill tokens processed.", TOKENS, 1800.0),
        ("request_generation_tokens", "Number of generation tokens processed.", TOKENS, 400.0),
        ("request_max_num_generation_tokens", "Histogram of maximum number of requested generation tokens.",
         TOKENS, 400.0),
        ("request_params_n", "Histogram of the n request parameter.", [1, 2, 5, 10, 20], 1.0),
        ("request_params_max_tokens", "Histogram of the max_tokens request parameter.", TOKENS, 1024.0),
    ]  # fmt: skip
    fams += [Family(f"vllm:{n}", "histogram", h, _one(LABELS, hist=_hist(b, rng, s))) for n, h, b, s in hists]
    fams.append(
        Family(
            "vllm:cache_config_info",
            "gauge",
            "Information of the LLMEngine CacheConfig",
            [Series({"block_size": "16", "cache_dtype": "auto", "calculate_kv_scales": "False", "cpu_offload_gb": "0",
                     "enable_prefix_caching": "True", "engine": "0", "gpu_memory_utilization": "0.9",
                     "is_attention_free": "False", "num_cpu_blocks": "None", "num_gpu_blocks": "29340",
                     "num_gpu_blocks_override": "None", "prefix_caching_hash_algo": "builtin",
                     "sliding_window": "None", "swap_space": "4", "swap_space_bytes": "4294967296"}, 1.0)],
        )
    )  # fmt: skip
    fams.append(
        Family("vllm:lora_requests_info", "gauge", "Running stats on lora requests.",
               [Series({"max_lora": "0", "running_lora_adapters": "", "waiting_lora_adapters": ""}, 1.754e9)])
    )  # fmt: skip
    return _process_families() + fams + _http_families(rng)


def _process_families() -> list[Family]:
    gc = [Series({"generation": str(g)}, v) for g, v in ((0, 5126.0), (1, 1437.0), (2, 88.0))]
    return [
        Family("python_gc_objects_collected", "counter", "Objects collected during gc", gc),
        Family("python_gc_objects_uncollectable", "counter", "Uncollectable objects found during GC",
               [Series({"generation": str(g)}, 0.0) for g in range(3)]),
        Family("python_gc_collections", "counter", "Number of times this generation was collected",
               [Series({"generation": str(g)}, v) for g, v in ((0, 1830.0), (1, 166.0), (2, 9.0))]),
        Family("python_info", "gauge", "Python platform information",
               [Series({"implementation": "CPython", "major": "3", "minor": "12", "patchlevel": "11",
                        "version": "3.12.11"}, 1.0)]),
        Family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", [Series({}, 4.1e10)]),
        Family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", [Series({}, 3.2e9)]),
        Family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
               [Series({}, 1.754e9)]),
        Family("process_cpu_seconds_total", "gauge", "Total user and system CPU time spent in seconds.",
               [Series({}, 8123.45)]),
        Family("process_open_fds", "gauge", "Number of open file descriptors.", [Series({}, 187.0)]),
        Family("process_max_fds", "gauge", "Maximum number of open file descriptors.", [Series({}, 1048576.0)]),
    ]  # fmt: skip


def _http_families(rng: random.Random) -> list[Family]:
    requests = [
        Series({"handler": h, "method": m, "status": s}, float(rng.randint(10, 90000)), created=CREATED)
        for h in HANDLERS
        for m, s in (("GET", "2xx"), ("POST", "2xx"), ("POST", "4xx"))
    ]
    sizes = [Series({"handler": h}, float(rng.randint(10, 9000)), created=CREATED) for h in HANDLERS]
    durations = [
        Series({"handler": h, "method": m}, hist=_hist([0.1, 0.5, 1.0], rng, 0.3, 200), created=CREATED)
        for h in HANDLERS
        for m in ("GET", "POST")
    ]
    return [
        Family("http_requests", "counter", "Total number of requests by method, status and handler.", requests),
        Family("http_request_size_bytes", "counter", "Content length of incoming requests by handler.", sizes),
        Family("http_response_size_bytes", "counter", "Content length of outgoing responses by handler.", sizes),
        Family("http_request_duration_highr_seconds", "histogram",
               "Latency with many buckets but no API specific labels. Made for more accurate percentile calculations.",
               [Series({}, hist=_hist(HIGHR, rng, 2.0), created=CREATED)]),
        Family("http_request_duration_seconds", "histogram",
               "Latency with only few buckets by handler. Made to be only used if aggregation by handler is important.",
               durations),
    ]  # fmt: skip


def vllm_010_body() -> str:
    return render(vllm_010_families())


if __name__ == "__main__":
    body = vllm_010_body()
    print(f"{len(body.encode())} bytes, {body.count(chr(10))} lines")
