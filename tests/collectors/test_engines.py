"""collectors/engines.py: metric maps, variant detection and DP/TP aggregation, on real expositions."""

from __future__ import annotations

import pytest

from llmsched.collectors.engines import BUILTIN_KEYS, build_engine_maps, combine, detection_status, read_engine
from llmsched.collectors.prom import Sample
from llmsched.shared.config_model import EngineVariant

from tests.collectors.scrape_expositions import (
    GARBAGE,
    MINDIE,
    QUIRKS,
    SGLANG_COLON,
    SGLANG_DP2_TP2,
    SGLANG_UNDERSCORE,
    VLLM_BOTH,
    VLLM_DP2,
    VLLM_NEW,
    VLLM_OLD,
    VLLM_PARTIAL,
    VLLM_TWO_MODELS,
)

MAPS = build_engine_maps()
ASCEND = EngineVariant(
    "vllm_ascend",
    waiting_queue="vllm:num_requests_waiting",
    cache_usage="vllm:kv_cache_usage_perc",
    running_req="vllm:num_requests_running",
)
MINDIE_VARIANT = EngineVariant(
    "vllm_mindie",
    waiting_queue="num_requests_waiting",
    cache_usage="npu_cache_usage_perc",
    running_req="num_requests_running",
)


@pytest.mark.parametrize("text", [VLLM_NEW, VLLM_OLD, VLLM_BOTH], ids=["new-kv-name", "old-kv-name", "both"])
def test_vllm_kv_usage_is_read_under_the_new_or_the_old_name(text):
    r = read_engine(text, "vllm", MAPS)
    assert r.error is None
    assert r.metrics == {"waiting_queue": 2.0, "cache_usage": 0.3127, "running_req": 7.0}
    assert r.kv_cache_max == 0.3127
    assert (r.engine, r.detected_variant, r.detection_status) == ("vllm", "vllm", "ok")


def test_vllm_prefers_the_new_kv_name_when_both_are_present():
    text = VLLM_BOTH.replace("} 0.3127\n# HELP vllm:prefix", "} 0.9\n# HELP vllm:prefix")  # the old gauge only
    r = read_engine(text, "vllm", MAPS)
    assert r.keys["cache_usage"] == "vllm:kv_cache_usage_perc" and r.metrics["cache_usage"] == 0.3127


def test_vllm_data_parallel_sums_queues_and_averages_kv_keeping_the_max():
    r = read_engine(VLLM_DP2, "vllm", MAPS)
    assert r.metrics["waiting_queue"] == 7.0  # not the original's mean (3.5)
    assert r.metrics["running_req"] == 7.0
    assert r.metrics["cache_usage"] == pytest.approx(0.64)
    assert r.kv_cache_max == 0.87


def test_vllm_waiting_by_reason_is_not_added_to_the_waiting_queue():
    assert read_engine(VLLM_DP2, "vllm", MAPS).metrics["waiting_queue"] == 7.0


def test_several_models_on_one_endpoint_sum_queues_and_average_kv():
    r = read_engine(VLLM_TWO_MODELS, "vllm", MAPS)
    assert r.metrics == {"waiting_queue": 10.0, "cache_usage": pytest.approx(0.4), "running_req": 3.0}
    assert r.kv_cache_max == 0.6


@pytest.mark.parametrize("text", [SGLANG_COLON, SGLANG_UNDERSCORE], ids=["sglang:", "sglang_"])
def test_sglang_is_read_with_either_prefix(text):
    r = read_engine(text, "sglang", MAPS)
    assert r.metrics == {"waiting_queue": 3.0, "cache_usage": 0.58, "running_req": 12.0}
    assert (r.engine, r.detected_variant, r.detection_status) == ("sglang", "sglang", "ok")


def test_sglang_tp_duplicates_count_once_and_dp_ranks_add_up():
    r = read_engine(SGLANG_DP2_TP2, "sglang", MAPS)
    assert r.metrics["waiting_queue"] == 7.0  # 3 + 4, not 14
    assert r.metrics["running_req"] == 22.0
    assert r.metrics["cache_usage"] == pytest.approx(0.6)
    assert r.kv_cache_max == 0.7


def test_combine_keeps_the_largest_of_copies_that_differ_only_in_replica_labels():
    samples = [
        Sample("q", {"dp_rank": "0", "tp_rank": "0"}, 3.0),
        Sample("q", {"dp_rank": "0", "tp_rank": "1"}, 4.0),
        Sample("q", {"dp_rank": "1", "tp_rank": "0", "pid": "7"}, 1.0),
    ]
    assert sorted(combine(samples)) == [1.0, 4.0]


@pytest.mark.parametrize(
    "text,engine", [(VLLM_NEW, "vllm"), (VLLM_OLD, "vllm"), (SGLANG_COLON, "sglang"), (SGLANG_UNDERSCORE, "sglang")]
)
def test_auto_detects_the_engine_per_body(text, engine):
    r = read_engine(text, "auto", MAPS)
    assert (r.engine, r.detection_status) == (engine, "ok")


def test_a_fixed_engine_type_does_not_read_the_other_engines_names():
    r = read_engine(SGLANG_COLON, "vllm", MAPS)
    assert r.error is not None and r.error.startswith("no engine metric found")
    assert r.engine == "vllm" and r.detection_status == "failed"


def test_partial_reading_is_ok_with_status_partial_and_degraded_after_a_full_one():
    r = read_engine(VLLM_PARTIAL, "vllm", MAPS)
    assert r.error is None
    assert r.metrics == {"running_req": 7.0} and r.kv_cache_max is None
    assert r.detection_status == "partial"
    assert read_engine(VLLM_PARTIAL, "vllm", MAPS, was_ok=True).detection_status == "degraded"


def test_detection_status_rules():
    assert [detection_status(n, False) for n in (3, 2, 1, 0)] == ["ok", "partial", "partial", "failed"]
    assert [detection_status(n, True) for n in (3, 2, 0)] == ["ok", "degraded", "failed"]


def test_garbage_is_an_error_naming_the_malformed_line():
    r = read_engine(GARBAGE, "vllm", MAPS)
    assert r.error == (
        "malformed line 3 of vllm:num_requests_waiting: could not convert string to float: '{engine=\"0\"'"
    )
    assert r.detection_status == "failed" and r.metrics == {}


def test_a_malformed_series_of_a_read_metric_fails_the_scrape_rather_than_undercount():
    text = VLLM_DP2.replace(
        'vllm:num_requests_waiting{engine="1",model_name="deepseek-ai/DeepSeek-V3"} 5.0',
        'vllm:num_requests_waiting{engine="1",model_name="deepseek-ai/DeepSeek-V3"} 5.0.1',
    )
    r = read_engine(text, "vllm", MAPS)
    assert r.error is not None and "vllm:num_requests_waiting" in r.error


def test_a_broken_line_of_an_unread_metric_does_not_matter():
    line = 'vllm:num_preemptions_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0'
    assert line in VLLM_NEW
    text = VLLM_NEW.replace(line, 'vllm:num_preemptions_total{engine="0" oops')
    assert read_engine(text, "vllm", MAPS).detection_status == "ok"


def test_a_body_without_final_line_feed_is_read_like_any_other():
    # The original's vLLM and SGLang mocks end /metrics so; only HTTP framing can tell a cut body.
    assert read_engine(VLLM_NEW.rstrip("\n"), "vllm", MAPS) == read_engine(VLLM_NEW, "vllm", MAPS)
    assert read_engine(VLLM_NEW.rstrip("\n"), "vllm", MAPS).detection_status == "ok"


def test_nan_and_inf_series_are_ignored_and_an_unlabelled_series_counts():
    r = read_engine(QUIRKS, "vllm", MAPS)
    assert r.metrics == {"waiting_queue": 3.0, "cache_usage": 0.25, "running_req": 15.0}


def test_a_metric_with_only_nan_values_is_missing_not_zero():
    r = read_engine('vllm:num_requests_waiting{engine="0"} NaN\nvllm:num_requests_running 1\n', "vllm", MAPS)
    assert r.metrics == {"running_req": 1.0} and r.detection_status == "partial"


def test_mindie_variant_reads_unprefixed_names_and_is_reported_by_name():
    maps = build_engine_maps([MINDIE_VARIANT])
    r = read_engine(MINDIE, "vllm", maps)
    # The 0-100 cache scale is passed through as is (out of scope, see docs/scraper.md).
    assert r.metrics == {"waiting_queue": 10.0, "cache_usage": 30.0, "running_req": 20.0}
    assert r.detected_variant == "vllm_mindie"
    assert read_engine(VLLM_NEW, "vllm", maps).detected_variant == "vllm"


def test_a_variant_that_repeats_standard_keys_does_not_relabel_plain_vllm():
    maps = build_engine_maps([ASCEND])
    for text in (VLLM_NEW, VLLM_OLD):
        assert read_engine(text, "vllm", maps).detected_variant == "vllm"


def test_user_variant_keys_are_tried_before_the_builtins_in_yaml_order():
    mlu = EngineVariant("vllm_mlu", cache_usage="vllm:mlu_cache_usage_perc")
    musa = EngineVariant("vllm_musa", cache_usage="vllm:gpu_cache_usage_perc")
    maps = build_engine_maps([mlu, musa, ASCEND])
    keys = [c.key for c in maps["vllm"].candidates["cache_usage"]]
    assert keys == ["vllm:mlu_cache_usage_perc", "vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc"]
    assert [c.key for c in maps["sglang"].candidates["cache_usage"]] == list(BUILTIN_KEYS["sglang"]["cache_usage"])
    mlu_body = VLLM_NEW.replace("vllm:kv_cache_usage_perc", "vllm:mlu_cache_usage_perc")
    assert read_engine(mlu_body, "vllm", maps).detected_variant == "vllm_mlu"


def test_between_two_matching_user_variants_the_earlier_in_yaml_order_wins_every_time():
    a = EngineVariant("vllm_a", cache_usage="vllm:x_cache")
    b = EngineVariant("vllm_b", waiting_queue="vllm:x_waiting")
    text = "vllm:x_cache 0.5\nvllm:x_waiting 2\nvllm:num_requests_running 1\n"
    assert {read_engine(text, "vllm", build_engine_maps([a, b])).detected_variant for _ in range(20)} == {"vllm_a"}
    assert read_engine(text, "vllm", build_engine_maps([b, a])).detected_variant == "vllm_b"


def test_sglang_variants_only_apply_to_sglang():
    custom = EngineVariant("sglang_custom", waiting_queue="custom_queue")
    maps = build_engine_maps([custom])
    assert "custom_queue" not in maps["vllm"].names
    r = read_engine(SGLANG_COLON.replace("sglang:num_queue_reqs", "custom_queue"), "sglang", maps)
    assert r.detected_variant == "sglang_custom" and r.metrics["waiting_queue"] == 3.0


def test_doc_fields_have_the_metrics_document_keys():
    fields = read_engine(VLLM_DP2, "vllm", MAPS).doc_fields()
    assert set(fields) == {"metrics", "kv_cache_max", "engine", "detected_variant", "detection_status", "prefix_cache"}
