"""The selection of wanted lines (one compiled pattern over the body) picks exactly the lines the former loop over
every line picked (split on line feeds, strip, skip comments, keep a line whose name is wanted), on every fixture
and on generated bodies with foreign junk, CRLF, blanks around names and no final line feed; readings follow."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from llmsched.collectors import prom
from llmsched.collectors.engines import build_engine_maps, read_engine
from llmsched.collectors.prom import line_name, parse_exposition, select_lines

from tests.collectors import scrape_expositions as fx

FIXTURES = {name: getattr(fx, name) for name in dir(fx) if name.isupper() and isinstance(getattr(fx, name), str)}
MAPS = build_engine_maps()
ALL_NAMES = MAPS["vllm"].names | MAPS["sglang"].names
NAME_SETS = [MAPS["vllm"].names, MAPS["sglang"].names, ALL_NAMES, frozenset({"vllm:num_requests_waiting"})]


def former_selection(text: str, names: frozenset[str]) -> list[tuple[int, str]]:
    """The loop the selection replaced, as the oracle: (offset, stripped line) of each wanted sample line."""
    out, offset = [], 0
    for raw in text.split("\n"):
        line = raw.strip()
        if line and not line.startswith("#") and line_name(line) in names:
            out.append((offset, line))
        offset += len(raw) + 1
    return out


def test_every_fixture_selects_the_lines_the_former_loop_selected():
    assert len(FIXTURES) >= 10
    for fixture, text in FIXTURES.items():
        for names in NAME_SETS:
            for body in (text, text.rstrip("\n"), text.replace("\n", "\r\n")):
                assert select_lines(body, names) == former_selection(body, names), fixture


def test_every_fixture_gives_the_same_reading_with_or_without_its_final_line_feed():
    for fixture, text in FIXTURES.items():
        for engine_type in ("vllm", "sglang", "auto"):
            assert read_engine(text.rstrip("\n"), engine_type, MAPS) == read_engine(text, engine_type, MAPS), fixture


def test_data_parallel_series_are_all_selected_and_summed():
    r = read_engine(fx.VLLM_DP2.rstrip("\n"), "vllm", MAPS)
    assert r.metrics == {"waiting_queue": 7.0, "cache_usage": 0.64, "running_req": 7.0} and r.kv_cache_max == 0.87
    r = read_engine(fx.SGLANG_DP2_TP2, "auto", MAPS)
    assert r.metrics == {"waiting_queue": 7.0, "cache_usage": 0.6, "running_req": 22.0}


def test_names_that_only_start_like_a_wanted_name_are_not_selected():
    text = (
        'vllm:num_requests_waiting_by_reason{reason="capacity"} 9\n'
        "vllm:num_requests_waitingX 8\n"
        "# TYPE vllm:num_requests_waiting gauge\n"
        "xvllm:num_requests_waiting 7\n"
        "  \tvllm:num_requests_waiting\t5\n"
    )
    expo = parse_exposition(text, {"vllm:num_requests_waiting"})
    assert [s.value for s in expo.get("vllm:num_requests_waiting")] == [5.0] and not expo.bad_lines


JUNK = st.sampled_from(
    [
        "<html><body>502 Bad Gateway</body></html>",
        "{{ not prometheus }}",
        'vllm:num_requests_waiting{engine="0" 12',
        "vllm:num_requests_waiting",
        "vllm:num_requests_waiting 1 2 3",
        "vllm:num_requests_waitingX 8",
        'vllm:num_requests_waiting_by_reason{reason="capacity"} 9',
        'sglang:token_usage{tp_rank="0"} 0.5 1717000000000',
        "  vllm:num_requests_running\t4",
        "vllm:num_requests_running\r 3",
        "vllm:num_requests_running\r\r",
        "\x0c vllm:num_requests_running\x0b 3",
        "\xa0vllm:num_requests_running 2\x85",
        "vllm:num_requests_running\u2028",
        "# TYPE vllm:num_requests_running gauge",
        'foreign_metric{a="b"} not-a-number',
        "",
        "   ",
    ]
)
FIXTURE_LINES = st.sampled_from(sorted({line for text in FIXTURES.values() for line in text.split("\n")}))


TEXT = st.text(st.characters(min_codepoint=9, max_codepoint=0x2030))


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(
        st.one_of(JUNK, FIXTURE_LINES, st.text(st.characters(min_codepoint=9, max_codepoint=126))), max_size=30
    ),
    crlf=st.booleans(),
    final_lf=st.booleans(),
    names=st.sampled_from(NAME_SETS),
)
def test_generated_bodies_with_junk_select_the_lines_the_former_loop_selected(lines, crlf, final_lf, names):
    sep = "\r\n" if crlf else "\n"
    body = sep.join(lines) + (sep if final_lf and lines else "")
    assert select_lines(body, names) == former_selection(body, names)


def cold(text: str, names: frozenset[str] | None) -> tuple:
    prom._series.clear()
    return as_tuple(parse_exposition(text, names))


def as_tuple(expo) -> tuple:
    """Comparable (NaN as text): samples per name with labels, value and timestamp; bad lines."""
    samples = {k: [(s.name, s.labels, repr(s.value), s.timestamp) for s in v] for k, v in expo.samples.items()}
    return samples, [(b.number, b.name, b.reason) for b in expo.bad_lines]


def test_a_line_whose_series_was_parsed_before_reads_the_same_as_through_prometheus_client():
    for fixture, text in FIXTURES.items():
        for names in (*NAME_SETS, None):
            expected = cold(text, names)
            assert as_tuple(parse_exposition(text, names)) == expected, fixture  # every series known now


VALUES = st.sampled_from(["0", "7.0", "-1.5e-3", "NaN", "+Inf", "1_0", "0x1f", "", "1 1717000000000", "2 x", " 3"])
SERIES = st.sampled_from(
    [
        'vllm:num_requests_waiting{engine="0",model_name="m"}',
        'vllm:num_requests_waiting{engine="1",model_name="say \\"}\\" {to} me"}',
        "vllm:num_requests_running{}",
        'vllm:kv_cache_usage_perc{__name__="vllm:kv_cache_usage_perc"}',
        'vllm:kv_cache_usage_perc{a="b" # c}',
        "vllm:num_requests_running",
    ]
)


@settings(max_examples=300, deadline=None)
@given(first=st.lists(st.tuples(SERIES, VALUES), max_size=8), second=st.lists(st.tuples(SERIES, VALUES), max_size=8))
def test_values_read_through_the_series_cache_equal_a_cold_parse(first, second):
    names = MAPS["vllm"].names
    one = "".join(f"{s} {v}\n" for s, v in first)
    two = "".join(f"{s} {v}\n" for s, v in second)
    expected = cold(two, names)
    prom._series.clear()
    parse_exposition(one, names)  # warms the cache with the first body's series
    assert as_tuple(parse_exposition(two, names)) == expected
