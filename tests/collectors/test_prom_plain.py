"""The direct read of plain sample lines (a known name{labels}, then value and timestamp read without
prometheus_client) gives what prometheus_client's own parser gives for every selected line, line by line: on every
fixture (foreign junk, no final line feed, CRLF, escaped label values, data-parallel series, NaN/Inf, exponents,
timestamps) and on generated bodies, read cold and again with every series known."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from llmsched.collectors import prom
from llmsched.collectors.prom import parse_exposition

from tests.collectors.test_prom_selection import FIXTURES, NAME_SETS, former_selection, line_name

WANTED = frozenset({"vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc"})


def oracle(text: str, names: frozenset[str]) -> tuple:
    """prometheus_client on each wanted line alone (the scraper's reading before any cache): samples by name as
    (name, labels, value, timestamp), and bad lines as (number, name, reason)."""
    samples: dict[str, list] = {}
    bad = []
    for offset, line in former_selection(text, names):
        try:
            found = [
                (s.name, dict(s.labels), float(s.value), None if s.timestamp is None else float(s.timestamp))
                for family in text_string_to_metric_families(line + "\n")
                for s in family.samples
            ]
        except (ValueError, OverflowError) as exc:  # prometheus_client reads integers as int: one too big for a float
            bad.append((text.count("\n", 0, offset) + 1, line_name(line), prom._reason(exc)))
            continue
        for sample in found:
            samples.setdefault(sample[0], []).append(sample)
    return _comparable(samples), bad


def _comparable(samples: dict[str, list]) -> dict:
    # NaN != NaN and 0.0 == -0.0: compare values by repr
    return {
        k: [(n, dict(lb), repr(v), None if t is None else repr(t)) for n, lb, v, t in v] for k, v in samples.items()
    }


def read(text: str, names: frozenset[str]) -> tuple:
    expo = parse_exposition(text, names)
    samples = {k: [(s.name, s.labels, s.value, s.timestamp) for s in v] for k, v in expo.samples.items()}
    return _comparable(samples), [(b.number, b.name, b.reason) for b in expo.bad_lines]


def test_every_fixture_reads_as_prometheus_client_reads_it_line_by_line_cold_and_warm():
    for fixture, text in FIXTURES.items():
        for names in NAME_SETS:
            for body in (text, text.rstrip("\n"), text.replace("\n", "\r\n")):
                expected = oracle(body, names)
                prom._series.clear()
                assert read(body, names) == expected, fixture  # cold: every series parsed by prometheus_client
                assert read(body, names) == expected, fixture  # warm: every plain line read directly


def test_the_plain_read_takes_the_direct_path_for_known_series():
    prom._series.clear()
    text = 'vllm:num_requests_waiting{engine="0"} 2.0\nvllm:num_requests_running 7 1717000000000\n'
    assert parse_exposition(text, WANTED).samples  # every wanted line parsed (names are parsed when asked for)
    assert set(prom._series) == {'vllm:num_requests_waiting{engine="0"}', "vllm:num_requests_running"}
    expo = parse_exposition(text.replace("2.0", "3.5e-1").replace(" 7 ", " 8 "), WANTED)
    assert [s.value for s in expo.get("vllm:num_requests_waiting")] == [0.35]
    running = expo.get("vllm:num_requests_running")[0]
    assert (running.value, running.timestamp, running.labels) == (8.0, 1717000000.0, {})


def test_a_label_block_that_closes_before_the_last_brace_is_never_cached():
    # prometheus_client ends the labels at the first `}` outside quotes and reads the first and last of the
    # remaining words as value and timestamp: such a line must never be read from a cached key.
    prom._series.clear()
    line = 'vllm:num_requests_waiting{engine="0"} 5 } 7 7\n'
    assert read(line, WANTED) == oracle(line, WANTED)
    assert not prom._series
    other = 'vllm:num_requests_waiting{engine="0"} 5 } 8 9\n'
    assert read(other, WANTED) == oracle(other, WANTED)


LABELS = st.sampled_from(
    [
        "",
        "{}",
        '{engine="0"}',
        '{engine="1",model_name="m"}',
        '{model_name="say \\"}\\" {to} me\\\\"}',
        '{a="x\\\\"}',
        '{a="b",}',
        '{a="b" # c}',
        '{a=\\"b"}',
        '{a="b"}}',
        '{__name__="vllm:kv_cache_usage_perc"}',
        '{a="b",a="c"}',
        '{0a="b"}',
        '{a="\u00e9\u4e2d"}',
        '{a="b"',
        '{engine="0"} 5 }',
    ]
)
NAMES = st.sampled_from(sorted(WANTED) + ["vllm:num_requests_waitingX", "  vllm:num_requests_running"])
NUMBERS = st.sampled_from(
    ["0", "-0", "+7", "7.0", "-1.5e-3", "1e5", ".5", "5.", "1.048576e+06", "NaN", "-NaN", "+Inf", "-Inf", "Inf",
     "inf", "nan", "1_0", "0x1f", "", "x", "\u0663", "1" * 400, "9" * 310 + ".0", "1e400", "17e"]
)  # fmt: skip
SEPARATORS = st.sampled_from([" ", "  ", "\t", " \t"])
STAMPS = st.sampled_from(
    ["", "1717000000000", "123456789012345679", "-5", "1.5", "17170000000000000000000", "x", "1" * 400]
)


@st.composite
def lines(draw) -> str:
    line = draw(NAMES) + draw(LABELS) + draw(SEPARATORS) + draw(NUMBERS)
    if stamp := draw(STAMPS):
        line += draw(SEPARATORS) + stamp
    return line + draw(st.sampled_from(["", " ", "\r", "\x0b"]))


@settings(max_examples=400, deadline=None)
@given(body=st.lists(lines(), max_size=12), again=st.lists(lines(), max_size=12), final_lf=st.booleans())
def test_generated_lines_read_as_prometheus_client_reads_them_cold_and_with_known_series(body, again, final_lf):
    first = "\n".join(body) + ("\n" if final_lf else "")
    second = "\n".join(again + body)
    prom._series.clear()
    assert read(first, WANTED) == oracle(first, WANTED)
    assert read(second, WANTED) == oracle(second, WANTED)  # series of `first` known now
    assert read(first, WANTED) == oracle(first, WANTED)


def test_an_integer_beyond_a_float_is_a_bad_line_not_a_crash():
    expo = parse_exposition("vllm:num_requests_waiting " + "9" * 400 + "\n", WANTED)
    assert [b.number for b in expo.bad_lines] == [1] and not expo.samples
    assert math.isinf(parse_exposition("vllm:num_requests_waiting 1e400\n", WANTED).get(
        "vllm:num_requests_waiting")[0].value)  # fmt: skip


def test_a_name_is_parsed_when_first_asked_for_and_its_bad_lines_then_counted():
    text = "vllm:num_requests_waiting 2\nvllm:num_requests_running x\nvllm:kv_cache_usage_perc 0.5\n"
    expo = parse_exposition(text, WANTED)
    assert expo.get("vllm:num_requests_waiting")[0].value == 2.0
    assert expo.first_bad("vllm:kv_cache_usage_perc") is None
    assert expo.first_bad("vllm:num_requests_running").number == 2
    assert [b.number for b in expo.bad_lines] == [2]
    assert set(expo.samples) == {"vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"}
