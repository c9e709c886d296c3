"""Prefix-cache truth from an engine's /metrics: the counters, the engine's own hit-rate gauge and
the KV capacity, read from vLLM's and SGLang's real names (as the engine emulator writes them)."""

from __future__ import annotations

import pytest

from llmsched.collectors.engines import PREFIX_CACHE_NAMES, PrefixCacheReading, read_prefix_cache
from llmsched.collectors.prom import parse_exposition
from llmsched.emulators.engine_metrics import metrics_text
from llmsched.emulators.engine_state import EngineSpec, EngineState


def emulated(**spec: object) -> EngineState:
    state = EngineState(EngineSpec(**spec))
    for i, core in enumerate(state.cores):
        core.counters["prefix_queries"] = 1000.0 * (i + 1)
        core.counters["prefix_hits"] = 400.0 * (i + 1)
        core.counters["prompt_tokens"] = 1000.0 * (i + 1)
        core.last_prefill_hit_rate = 0.25 * (i + 1)
    return state


def read(state: EngineState, engine: str) -> PrefixCacheReading:
    return read_prefix_cache(parse_exposition(metrics_text(state), PREFIX_CACHE_NAMES), engine)


@pytest.mark.parametrize("kv_name", ["new", "both", "old"])
def test_vllm_counters_are_summed_over_dp_engines_under_the_new_or_the_old_names(kv_name):
    reading = read(emulated(kv_name=kv_name, dp=2, kv_capacity=4096), "vllm")
    assert reading.hits_total == 400 + 800
    assert reading.queries_total == 1000 + 2000
    assert reading.capacity_tokens == 2 * 4096 and reading.block_size == 16
    assert reading.hit_rate is None  # V1 has no gauge: the rate comes from the counters


def test_vllm_capacity_comes_from_cache_config_info_labels():
    text = (
        'vllm:cache_config_info{block_size="16",cache_dtype="auto",enable_prefix_caching="True",engine="0",'
        'gpu_memory_utilization="0.9",num_gpu_blocks="29340"} 1.0\n'
        'vllm:cache_config_info{block_size="32",engine="1",num_gpu_blocks="100"} 1.0\n'
        'vllm:cache_config_info{engine="2"} 1.0\n'  # label sets vary by version: no numbers, no capacity
        "vllm:gpu_prefix_cache_hit_rate 0.5\n"
    )
    reading = read_prefix_cache(parse_exposition(text, PREFIX_CACHE_NAMES), "vllm")
    assert reading.capacity_tokens == 29340 * 16 + 100 * 32
    assert reading.block_size == 32
    assert reading.hit_rate == 0.5  # the V0 gauge
    assert reading.hits_total is None and reading.queries_total is None


@pytest.mark.parametrize("prefix", ["colon", "underscore"])
def test_sglang_counters_gauge_and_capacity_count_tp_copies_once_and_sum_dp_ranks(prefix):
    state = emulated(engine="sglang", sglang_prefix=prefix, dp=2, tp=2, all_schedulers=True, kv_capacity=5000)
    reading = read(state, "sglang")
    assert reading.hits_total == 1200 and reading.queries_total == 3000
    assert reading.capacity_tokens == 2 * 5000  # two DP ranks; the TP copies of each count once
    assert reading.hit_rate == pytest.approx((0.25 + 0.5) / 2)
    assert reading.block_size is None


def test_an_engine_without_prefix_cache_metrics_reads_as_unknown():
    reading = read_prefix_cache(parse_exposition("vllm:num_requests_waiting 3\n", PREFIX_CACHE_NAMES), "vllm")
    assert reading == PrefixCacheReading()
    assert read_prefix_cache(parse_exposition("", PREFIX_CACHE_NAMES), "xinference") == PrefixCacheReading()


def test_the_scrape_document_carries_the_prefix_cache_beside_the_load_metrics():
    from llmsched.collectors.engines import build_engine_maps, read_engine

    doc = read_engine(metrics_text(emulated(dp=2, kv_capacity=4096)), "auto", build_engine_maps()).doc_fields()
    assert doc["engine"] == "vllm" and set(doc["metrics"]) == {"waiting_queue", "cache_usage", "running_req"}
    assert doc["prefix_cache"] == {
        "hits_total": 1200.0,
        "queries_total": 3000.0,
        "hit_rate": None,
        "capacity_tokens": 8192.0,
        "block_size": 16,
    }
    plain = "vllm:num_requests_waiting 1\nvllm:kv_cache_usage_perc 0.5\nvllm:num_requests_running 3\n"
    assert read_engine(plain, "vllm", build_engine_maps()).doc_fields()["prefix_cache"] is None
