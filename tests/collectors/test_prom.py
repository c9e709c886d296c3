"""llmsched.collectors.prom: the Prometheus text parser around prometheus_client, on real-shaped expositions."""

from __future__ import annotations

import math

from llmsched.collectors.prom import finite, line_name, parse_exposition

from tests.collectors.scrape_expositions import GARBAGE, QUIRKS, SGLANG_COLON, VLLM_NEW


def test_samples_are_grouped_by_sample_name_including_counter_and_histogram_suffixes():
    expo = parse_exposition(VLLM_NEW)
    assert [s.value for s in expo.get("vllm:num_requests_waiting")] == [2.0]
    assert expo.get("vllm:num_requests_waiting")[0].labels == {
        "engine": "0",
        "model_name": "meta-llama/Llama-3.1-8B-Instruct",
    }
    assert expo.get("vllm:prefix_cache_queries_total")[0].value == 1048576.0
    assert len(expo.get("vllm:time_to_first_token_seconds_bucket")) == 23
    assert len(expo.get("vllm:request_success_total")) == 4
    assert not expo.bad_lines


def test_multiprocess_ordering_with_sum_before_buckets_is_parsed():
    expo = parse_exposition(SGLANG_COLON)
    assert expo.get("sglang:time_to_first_token_seconds_sum")[0].value == 512.6
    assert expo.get("sglang:time_to_first_token_seconds_count")[0].value == 2000.0
    assert expo.get("sglang:token_usage")[0].labels["tp_rank"] == "0"


def test_only_the_requested_names_are_parsed():
    expo = parse_exposition(VLLM_NEW, names={"vllm:num_requests_running", "vllm:kv_cache_usage_perc"})
    assert set(expo.samples) == {"vllm:num_requests_running", "vllm:kv_cache_usage_perc"}


def test_unlabelled_samples_and_samples_with_timestamps_are_kept():
    expo = parse_exposition(QUIRKS)
    assert [s.value for s in expo.get("vllm:num_requests_waiting")] == [3.0]
    running = expo.get("vllm:num_requests_running")[0]
    assert running.value == 15.0
    assert running.timestamp == 1717000000.0  # exposition timestamps are milliseconds


def test_escaped_label_values_with_quotes_braces_and_backslashes_are_decoded():
    running = parse_exposition(QUIRKS).get("vllm:num_requests_running")[0]
    assert running.labels == {"model_name": 'say "hi" {to} me\\'}


def test_nan_and_inf_are_kept_as_floats_and_finite_filters_them_out():
    kv = parse_exposition(QUIRKS).get("vllm:kv_cache_usage_perc")
    assert math.isnan(kv[0].value) and kv[1].value == math.inf
    assert [s.value for s in finite(kv)] == [0.25]


def test_a_malformed_line_is_reported_with_its_number_and_name_and_the_rest_is_kept():
    text = VLLM_NEW.replace(
        'vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 2.0',
        'vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct" 2.0',
    )
    expo = parse_exposition(text)
    assert [(b.number, b.name) for b in expo.bad_lines] == [(6, "vllm:num_requests_waiting")]
    assert expo.get("vllm:num_requests_waiting") == []
    assert expo.get("vllm:num_requests_running")[0].value == 7.0
    assert expo.get("vllm:kv_cache_usage_perc")[0].value == 0.3127


def test_garbage_lines_outside_the_requested_names_are_not_even_looked_at():
    expo = parse_exposition(GARBAGE, names={"vllm:num_requests_running"})
    assert not expo.samples and not expo.bad_lines


def test_a_garbage_body_yields_bad_lines_and_no_samples():
    expo = parse_exposition(GARBAGE)
    assert not expo.samples
    assert {b.name for b in expo.bad_lines} == {"<html><body>502", "", "vllm:num_requests_waiting"}


def test_a_body_without_final_line_feed_is_parsed_last_line_included():
    # The original's mocks end /metrics without a final line feed: the body is complete, HTTP said so.
    text = VLLM_NEW[: VLLM_NEW.index("0.3127") + len("0.3127")]
    assert not text.endswith("\n")
    expo = parse_exposition(text, names={"vllm:kv_cache_usage_perc", "vllm:num_requests_waiting"})
    assert [s.value for s in expo.get("vllm:kv_cache_usage_perc")] == [0.3127]
    assert expo.get("vllm:num_requests_waiting")[0].value == 2.0
    assert not expo.bad_lines and expo.lines == 9


def test_a_last_line_cut_inside_its_labels_is_a_bad_line_not_a_sample():
    text = VLLM_NEW[: VLLM_NEW.index('vllm:kv_cache_usage_perc{engine="0"') + 30]
    expo = parse_exposition(text, names={"vllm:kv_cache_usage_perc"})
    assert [(b.number, b.name) for b in expo.bad_lines] == [(9, "vllm:kv_cache_usage_perc")]
    assert expo.get("vllm:kv_cache_usage_perc") == []


def test_windows_line_endings_and_tabs_are_tolerated():
    expo = parse_exposition('vllm:num_requests_waiting{engine="0"}\t4\r\nvllm:num_requests_running 1\r\n')
    assert expo.get("vllm:num_requests_waiting")[0].value == 4.0
    assert expo.get("vllm:num_requests_running")[0].value == 1.0


def test_empty_body_has_no_samples():
    expo = parse_exposition("")
    assert not expo.samples and not expo.bad_lines and expo.lines == 0


def test_line_name_stops_at_brace_space_or_tab():
    assert line_name('sglang:token_usage{tp_rank="0"} 1') == "sglang:token_usage"
    assert line_name("llamacpp:requests_processing 3") == "llamacpp:requests_processing"
    assert line_name("a\t1") == "a"
    assert line_name("{{ not prometheus }}") == ""
