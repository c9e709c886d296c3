"""Metrics bodies for the collector tests: real example scrapes (vLLM ~0.12,
SGLang, copied verbatim) and variants derived from them the way real versions differ (old/both KV names, DP=2,
the `sglang_` prefix, per-TP duplicates, MindIE's un-prefixed names), plus broken bodies.
"""

from __future__ import annotations

# one vLLM engine (about 0.12): running 7, waiting 2, KV 0.3127 under the new name only.
VLLM_NEW = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 7.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 2.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.3127
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.048576e+06
# HELP vllm:prefix_cache_queries_created Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_created gauge
vllm:prefix_cache_queries_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.717000012345e+09
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 412672.0
# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1184.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="meta-llama/Llama-3.1-8B-Instruct"} 57.0
vllm:request_success_total{engine="0",finished_reason="abort",model_name="meta-llama/Llama-3.1-8B-Instruct"} 2.0
vllm:request_success_total{engine="0",finished_reason="error",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.005",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.01",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.02",model_name="meta-llama/Llama-3.1-8B-Instruct"} 41.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.04",model_name="meta-llama/Llama-3.1-8B-Instruct"} 388.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.06",model_name="meta-llama/Llama-3.1-8B-Instruct"} 702.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.08",model_name="meta-llama/Llama-3.1-8B-Instruct"} 905.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1011.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.25",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1190.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1228.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.75",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1236.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="1.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1240.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="2.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1243.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="5.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1243.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="7.5",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1243.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="10.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1243.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="20.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1243.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="40.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1243.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="80.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1243.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="160.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1243.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="640.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1243.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="2560.0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1243.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1243.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1243.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 87.52931
# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",cache_dtype="auto",enable_prefix_caching="True",engine="0",gpu_memory_utilization="0.9",num_gpu_blocks="29340"} 1.0
"""

# vLLM < 0.9.2: the KV gauge and the prefix-cache counters still carry the `gpu_` names.
VLLM_OLD = (
    VLLM_NEW.replace("vllm:kv_cache_usage_perc KV-cache usage", "vllm:gpu_cache_usage_perc GPU KV-cache usage")
    .replace("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
    .replace("vllm:prefix_cache_", "vllm:gpu_prefix_cache_")
)

# vLLM 0.9.2-0.10.x: both KV names, same value.
VLLM_BOTH = VLLM_NEW.replace(
    "# HELP vllm:prefix_cache_queries_total",
    "# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.\n"
    "# TYPE vllm:gpu_cache_usage_perc gauge\n"
    'vllm:gpu_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.3127\n'
    "# HELP vllm:prefix_cache_queries_total",
    1,
)

# `--data-parallel-size 2` behind one /metrics: one series per engine.
# waiting 2 + 5 = 7, running 3 + 4 = 7, KV mean (0.41 + 0.87) / 2 = 0.64, max 0.87.
VLLM_DP2 = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="deepseek-ai/DeepSeek-V3"} 3.0
vllm:num_requests_running{engine="1",model_name="deepseek-ai/DeepSeek-V3"} 4.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="deepseek-ai/DeepSeek-V3"} 2.0
vllm:num_requests_waiting{engine="1",model_name="deepseek-ai/DeepSeek-V3"} 5.0
# HELP vllm:num_requests_waiting_by_reason Number of requests waiting, by reason.
# TYPE vllm:num_requests_waiting_by_reason gauge
vllm:num_requests_waiting_by_reason{engine="0",model_name="deepseek-ai/DeepSeek-V3",reason="capacity"} 2.0
vllm:num_requests_waiting_by_reason{engine="1",model_name="deepseek-ai/DeepSeek-V3",reason="capacity"} 5.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="deepseek-ai/DeepSeek-V3"} 0.41
vllm:kv_cache_usage_perc{engine="1",model_name="deepseek-ai/DeepSeek-V3"} 0.87
"""

# Two models served by one endpoint (V0-era labels: model_name only): queues add up, KV usage is averaged.
VLLM_TWO_MODELS = """\
vllm:num_requests_running{model_name="a"} 1.0
vllm:num_requests_running{model_name="b"} 2.0
vllm:num_requests_waiting{model_name="a"} 4.0
vllm:num_requests_waiting{model_name="b"} 6.0
vllm:gpu_cache_usage_perc{model_name="a"} 0.2
vllm:gpu_cache_usage_perc{model_name="b"} 0.6
"""

# Only the running gauge (a server started without some metrics, or a proxy that filters them).
VLLM_PARTIAL = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 7.0
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="m"} 1234.0
"""

# SGLang, current label set, multiprocess ordering: running 12, queue 3, token_usage 0.58.
SGLANG_COLON = """\
# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{engine_type="unified",model_name="Qwen/Qwen2.5-7B-Instruct",moe_ep_rank="0",pp_rank="0",tp_rank="0"} 12.0
# HELP sglang:num_queue_reqs The number of requests in the waiting queue.
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{engine_type="unified",model_name="Qwen/Qwen2.5-7B-Instruct",moe_ep_rank="0",pp_rank="0",tp_rank="0"} 3.0
# HELP sglang:token_usage The token usage.
# TYPE sglang:token_usage gauge
sglang:token_usage{engine_type="unified",model_name="Qwen/Qwen2.5-7B-Instruct",moe_ep_rank="0",pp_rank="0",tp_rank="0"} 0.58
# HELP sglang:num_used_tokens The number of used tokens.
# TYPE sglang:num_used_tokens gauge
sglang:num_used_tokens{engine_type="unified",model_name="Qwen/Qwen2.5-7B-Instruct",moe_ep_rank="0",pp_rank="0",tp_rank="0"} 281344.0
# HELP sglang:gen_throughput The generation throughput (token/s).
# TYPE sglang:gen_throughput gauge
sglang:gen_throughput{engine_type="unified",model_name="Qwen/Qwen2.5-7B-Instruct",moe_ep_rank="0",pp_rank="0",tp_rank="0"} 1432.77
# HELP sglang:cache_hit_rate The prefix cache hit rate.
# TYPE sglang:cache_hit_rate gauge
sglang:cache_hit_rate{engine_type="unified",model_name="Qwen/Qwen2.5-7B-Instruct",moe_ep_rank="0",pp_rank="0",tp_rank="0"} 0.0
# HELP sglang:prompt_tokens_total Number of prefill tokens processed.
# TYPE sglang:prompt_tokens_total counter
sglang:prompt_tokens_total{engine_type="unified",model_name="Qwen/Qwen2.5-7B-Instruct"} 3.1457e+06
# HELP sglang:cached_tokens_total Number of cached prompt tokens.
# TYPE sglang:cached_tokens_total counter
sglang:cached_tokens_total{engine_type="unified",model_name="Qwen/Qwen2.5-7B-Instruct"} 1.2288e+06
# HELP sglang:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE sglang:time_to_first_token_seconds histogram
sglang:time_to_first_token_seconds_sum{engine_type="unified",model_name="Qwen/Qwen2.5-7B-Instruct"} 512.6
sglang:time_to_first_token_seconds_bucket{engine_type="unified",le="0.1",model_name="Qwen/Qwen2.5-7B-Instruct"} 88.0
sglang:time_to_first_token_seconds_bucket{engine_type="unified",le="0.2",model_name="Qwen/Qwen2.5-7B-Instruct"} 734.0
sglang:time_to_first_token_seconds_bucket{engine_type="unified",le="0.4",model_name="Qwen/Qwen2.5-7B-Instruct"} 1502.0
sglang:time_to_first_token_seconds_bucket{engine_type="unified",le="0.6",model_name="Qwen/Qwen2.5-7B-Instruct"} 1811.0
sglang:time_to_first_token_seconds_bucket{engine_type="unified",le="0.8",model_name="Qwen/Qwen2.5-7B-Instruct"} 1902.0
sglang:time_to_first_token_seconds_bucket{engine_type="unified",le="1.0",model_name="Qwen/Qwen2.5-7B-Instruct"} 1950.0
sglang:time_to_first_token_seconds_bucket{engine_type="unified",le="2.0",model_name="Qwen/Qwen2.5-7B-Instruct"} 1991.0
sglang:time_to_first_token_seconds_bucket{engine_type="unified",le="4.0",model_name="Qwen/Qwen2.5-7B-Instruct"} 2000.0
sglang:time_to_first_token_seconds_bucket{engine_type="unified",le="6.0",model_name="Qwen/Qwen2.5-7B-Instruct"} 2000.0
sglang:time_to_first_token_seconds_bucket{engine_type="unified",le="8.0",model_name="Qwen/Qwen2.5-7B-Instruct"} 2000.0
sglang:time_to_first_token_seconds_bucket{engine_type="unified",le="10.0",model_name="Qwen/Qwen2.5-7B-Instruct"} 2000.0
sglang:time_to_first_token_seconds_bucket{engine_type="unified",le="20.0",model_name="Qwen/Qwen2.5-7B-Instruct"} 2000.0
sglang:time_to_first_token_seconds_bucket{engine_type="unified",le="40.0",model_name="Qwen/Qwen2.5-7B-Instruct"} 2000.0
sglang:time_to_first_token_seconds_bucket{engine_type="unified",le="60.0",model_name="Qwen/Qwen2.5-7B-Instruct"} 2000.0
sglang:time_to_first_token_seconds_bucket{engine_type="unified",le="80.0",model_name="Qwen/Qwen2.5-7B-Instruct"} 2000.0
sglang:time_to_first_token_seconds_bucket{engine_type="unified",le="100.0",model_name="Qwen/Qwen2.5-7B-Instruct"} 2000.0
sglang:time_to_first_token_seconds_bucket{engine_type="unified",le="200.0",model_name="Qwen/Qwen2.5-7B-Instruct"} 2000.0
sglang:time_to_first_token_seconds_bucket{engine_type="unified",le="400.0",model_name="Qwen/Qwen2.5-7B-Instruct"} 2000.0
sglang:time_to_first_token_seconds_bucket{engine_type="unified",le="+Inf",model_name="Qwen/Qwen2.5-7B-Instruct"} 2000.0
sglang:time_to_first_token_seconds_count{engine_type="unified",model_name="Qwen/Qwen2.5-7B-Instruct"} 2000.0
"""

# The same server scraped by a client that gets underscore names.
SGLANG_UNDERSCORE = SGLANG_COLON.replace("sglang:", "sglang_")

# DP attention with 2 DP ranks and --enable-metrics-for-all-schedulers at TP 2: every TP rank repeats its
# scheduler's state. queue 3 + 4 = 7, running 12 + 10 = 22, token_usage mean 0.6, max 0.7 (TP copies not added).
SGLANG_DP2_TP2 = "".join(
    f'sglang:{name}{{dp_rank="{dp}",engine_type="unified",model_name="Qwen/Qwen2.5-72B-Instruct",'
    f'moe_ep_rank="{tp}",pp_rank="0",tp_rank="{tp}"}} {value}\n'
    for name, values in (
        ("num_queue_reqs", ("3.0", "4.0")),
        ("num_running_reqs", ("12.0", "10.0")),
        ("token_usage", ("0.5", "0.7")),
    )
    for dp, value in enumerate(values)
    for tp in (0, 1)
)

# The original's MindIE mock: un-prefixed names, model_name only, and a 0-100 cache scale.
MINDIE = """\
# HELP num_requests_running Number of requests currently running on NPU.
# TYPE num_requests_running gauge
num_requests_running{model_name="Qwen3-8B"} 20.0
# HELP num_requests_waiting Number of requests waiting to be processed.
# TYPE num_requests_waiting gauge
num_requests_waiting{model_name="Qwen3-8B"} 10.0
# HELP npu_cache_usage_perc NPU KV-cache usage. 1 means 100 percent usage.
# TYPE npu_cache_usage_perc gauge
npu_cache_usage_perc{model_name="Qwen3-8B"} 30.0
# HELP cpu_cache_usage_perc CPU KV-cache usage. 1 means 100 percent usage.
# TYPE cpu_cache_usage_perc gauge
cpu_cache_usage_perc{model_name="Qwen3-8B"} 0.0
# HELP prompt_tokens_total Number of prefill tokens processed.
# TYPE prompt_tokens_total counter
prompt_tokens_total{model_name="Qwen3-8B"} 8192.0
# HELP time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE time_to_first_token_seconds histogram
time_to_first_token_seconds_bucket{le="0.1",model_name="Qwen3-8B"} 3.0
time_to_first_token_seconds_bucket{le="+Inf",model_name="Qwen3-8B"} 5.0
time_to_first_token_seconds_count{model_name="Qwen3-8B"} 5.0
time_to_first_token_seconds_sum{model_name="Qwen3-8B"} 1.25
"""

# What a proxy error page in front of an engine looks like (the engine emulator's "garbage" mode body).
GARBAGE = """\
<html><body>502 Bad Gateway</body></html>
{{ not prometheus }}
vllm:num_requests_waiting{engine="0" 12
"""

# Parser quirks that the original's regex dropped.
QUIRKS = """\

# a free comment
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting 3
vllm:num_requests_running{model_name="say \\"hi\\" {to} me\\\\"} 1.5e+01 1717000000000
vllm:kv_cache_usage_perc{engine="0"} NaN
vllm:kv_cache_usage_perc{engine="1"} +Inf
vllm:kv_cache_usage_perc{engine="2"} 0.25

"""
