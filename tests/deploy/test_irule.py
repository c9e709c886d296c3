"""The iRules keep the original's contract: variables, request bytes, parsing; and fix its leaks.

Static checks read the files; the pure procs (payload and request builders, response parser) then run under a
real tclsh and are compared with the spec's rules. Sideband behaviour against a real API: test_irule_sideband.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy.tcl_harness import MULTI, SINGLE, TCLSH, call_procs, needs_tclsh

RULES = [SINGLE, MULTI]
# The original's constants set in `when HTTP_REQUEST`, plus the timing switch that replaces the second file.
ORIGINAL_VARIABLES = {
    "debug": "0",
    "partition": "Common",
    "pool_tblb_sched": "pool_tblb_sched",
    "pool_backend_llm": "Pool_vllm",
    "pool_fallback_llm": "Pool_fallback_vllm",
    "sched_uri": "/scheduler/select",
    "side_timeout_ms": "500",
    "call_interval_ms": "1",
    "timing": "0",
}
# The opt-in prefix hints: off by default, so an unedited rule sends the original's bytes.
HINT_VARIABLES = {"prefix_hints": "0", "prefix_body_cap": "32768"}
REQUEST_TEMPLATE = (
    "POST {uri} HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n"
    "Connection: close\r\n\r\n{payload}"
)


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def proc_body(path: Path, name: str) -> str:
    """The text of `proc name {...} {...}` up to its closing brace (braces counted)."""
    source = text(path)
    start = source.index(f"proc {name} ")
    body_open = source.index("{", source.index("}", start) + 1)
    depth = 0
    for i in range(body_open, len(source)):
        depth += {"{": 1, "}": -1}.get(source[i], 0) if source[i - 1] != "\\" else 0
        if depth == 0:
            return source[body_open : i + 1]
    raise AssertionError(f"proc {name} never closes")


def event_variables(path: Path) -> dict[str, str]:
    event = text(path).split("when HTTP_REQUEST {", 1)[1]
    block = event.split("# ----", 2)[1]  # between the two "edit per deployment" rulers
    return {m.group(1): m.group(2).strip('"') for m in re.finditer(r"^\s*set (\w+) (\"[^\"]*\"|\S+)", block, re.M)}


# ------------------------------------------------------------------ static
@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_braces_brackets_and_quotes_balance(path):
    depth = {"{": 0, "[": 0}
    closing = {"}": "{", "]": "["}
    for lineno, line in enumerate(text(path).splitlines(), 1):
        code = line if line.lstrip().startswith("#") else line.split(";#")[0]
        if line.lstrip().startswith("#"):
            # Tcl counts braces even in comments inside a body: a comment must not unbalance them.
            assert code.count("{") == code.count("}"), f"{path.name}:{lineno}: unbalanced brace in a comment"
            continue
        previous = ""
        for ch in code:
            if previous != "\\":
                if ch in depth:
                    depth[ch] += 1
                elif ch in closing:
                    depth[closing[ch]] -= 1
                    assert depth[closing[ch]] >= 0, f"{path.name}:{lineno}: {ch} closes nothing"
            previous = ch if previous != "\\" else ""
    assert depth == {"{": 0, "[": 0}


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_variables_and_defaults_are_the_originals_plus_the_hints_switched_off(path):
    assert event_variables(path) == ORIGINAL_VARIABLES | HINT_VARIABLES


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_request_bytes_are_the_originals_http10_without_host_with_connection_close(path):
    body = proc_body(path, "build_request")
    assert (
        '"POST $uri HTTP/1.0\\r\\nContent-Type: application/json\\r\\nContent-Length: '
        '[string length $payload]\\r\\nConnection: close\\r\\n\\r\\n$payload"'
    ) in body
    assert "Host" not in text(path).split("proc build_request", 1)[1].split("proc ", 1)[0]


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_every_path_after_a_successful_connect_closes_the_connection(path):
    lines = proc_body(path, "request").splitlines()
    connect_at = next(i for i, line in enumerate(lines) if "connect -protocol TCP" in line)
    # The connect-failed branch returns before a connection exists; find where it ends.
    depth, branch_end = 0, None
    for i in range(connect_at, len(lines)):
        depth += lines[i].count("{") - lines[i].count("}")
        if depth == 0 and i > connect_at:
            branch_end = i
            break
    assert branch_end is not None
    closed = False
    for line in lines[branch_end + 1 :]:
        if re.search(r"\bclose \$conn\b", line):
            closed = True
        if re.search(r"\breturn\b", line):
            assert closed, f"{path.name}: `{line.strip()}` returns without closing the sideband connection"
    assert closed
    assert len(re.findall(r"\bconnect -protocol", text(path))) == 1, "one connect, in `request` only"


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_connect_send_and_recv_all_have_the_side_timeout(path):
    body = proc_body(path, "request")
    for command in (
        "connect -protocol TCP -timeout $timeout_ms",
        "send -timeout $timeout_ms",
        "recv -timeout $timeout_ms -status recv_status 1000",
    ):
        assert command in body


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_every_called_proc_is_defined_under_the_documented_rule_name(path):
    source = text(path)
    called = set(re.findall(r"call /Common/irule_llm::(\w+)", source))
    defined = set(re.findall(r"^proc (\w+) ", source, re.M))
    assert called and called <= defined
    targets = re.findall(r"(?:\[|^\s*)call (\S+)", source, re.M)
    assert targets and all(t.startswith("/Common/irule_llm::") for t in targets), targets
    assert "irule_llm_multi::" not in source


def test_the_multi_variant_shares_every_proc_and_event_of_the_single_one_but_the_scheduler_choice():
    single = {m: proc_body(SINGLE, m) for m in re.findall(r"^proc (\w+) ", text(SINGLE), re.M)}
    # The "exactly one scheduler" rule (split_scheduler, and `schedulers` that uses it) is what multi replaces.
    assert "proc split_scheduler" not in text(MULTI)
    for name, body in single.items():
        if name not in ("split_scheduler", "schedulers"):
            assert proc_body(MULTI, name) == body, f"proc {name} differs between the two files"
    data_event = text(SINGLE).split("when HTTP_REQUEST_DATA {", 1)[1].split("\n}\n", 1)[0]
    assert data_event == text(MULTI).split("when HTTP_REQUEST_DATA {", 1)[1].split("\n}\n", 1)[0]


def test_timing_is_a_variable_and_logs_the_originals_line():
    for path in RULES:
        assert (
            'log local0.info "Scheduler total duration: ${total_duration}ms (from connection to pool selection)"'
            in text(path)
        )
        assert "if { $timing }" in text(path)


def test_the_single_variant_keeps_the_exactly_one_scheduler_rule():
    assert "if { $count != 1 }" in proc_body(SINGLE, "split_scheduler")


# ------------------------------------------------------------------ pure procs under tclsh
@needs_tclsh
@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_payload_is_the_originals_json_with_addr_colon_port_members(path):
    members = "{10.1.1.1 8000} {10.1.1.2 8000} {10.0.0.9%2 8001} {2001:db8::1 80}"
    (strings, payload) = call_procs(
        path,
        [
            ("member_strings", members),
            ("build_sched_payload", "Pool_vllm", "Common", "10.1.1.1:8000 10.1.1.2:8000"),
        ],
    )
    assert strings == "10.1.1.1:8000 10.1.1.2:8000 10.0.0.9%2:8001 2001:db8::1:80"
    assert payload == '{"pool_name":"Pool_vllm","partition":"Common","members":["10.1.1.1:8000","10.1.1.2:8000"]}'


@needs_tclsh
@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_request_bytes_match_the_spec_exactly(path):
    payload = '{"pool_name":"example_pool1","partition":"Common","members":["127.0.0.1:8001","127.0.0.1:8002"]}'
    (request,) = call_procs(path, [("build_request", "/scheduler/select", payload)])
    # (the original's documented sample exchange prints Content-Length 95 for this 96-character payload; the rule,
    # like the original, sends [string length $payload].)
    assert request == REQUEST_TEMPLATE.format(uri="/scheduler/select", length=len(payload), payload=payload)


# (raw response, expected {nexthop status}) -- the original's step 5, plus the non-member 200 bodies made safe.
RESPONSES = [
    ("HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n10.0.0.1:8000", "10.0.0.1:8000 200"),
    ("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nnone", "0 0"),
    ("HTTP/1.1 200 OK\r\n\r\nfallback", "0 1"),
    ("HTTP/1.0 200 OK\r\n\r\n10.0.0.1%2:8000", "10.0.0.1%2:8000 200"),
    ("HTTP/1.1 200 OK\r\n\r\n2001:db8::1:8000", "2001:db8::1:8000 200"),
    ("HTTP/1.1 503 SERVICE UNAVAILABLE\r\n\r\n10.0.0.1:8000", "0 0"),
    ('HTTP/1.1 422 UNPROCESSABLE ENTITY\r\n\r\n{"detail":"x"}', "0 0"),
    ("HTTP/1.1 200 OK\r\nContent-Length: 13\r\n", "0 0"),  # timeout: header never finished
    ("", "0 0"),  # connect/send failed
    ("HTTP/1.1 200 OK\r\n\r\n<html><body>It works</body></html>", "0 0"),  # the original used this as a member
    ("HTTP/1.1 200 OK\r\n\r\nrequest_has_no_model_name", "0 0"),
    ("HTTP/1.1 200 OK\r\n\r\nno_the_model_name", "0 0"),
    ("HTTP/1.1 200 OK\r\n\r\n10.0.0.1:0", "0 0"),
    ("HTTP/1.1 200 OK\r\n\r\n10.0.0.1:99999", "0 0"),
    ("HTTP/1.1 200 OK\r\n\r\nNONE", "0 0"),
]


@needs_tclsh
@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_response_parsing_follows_the_spec_and_treats_non_members_as_none(path):
    results = call_procs(path, [("parse_response", raw) for raw, _ in RESPONSES])
    assert dict(zip([raw for raw, _ in RESPONSES], results)) == dict(RESPONSES)


@needs_tclsh
@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_a_member_answer_outside_the_offered_candidates_goes_to_the_default_pool(path):
    candidates = "10.0.0.1:8000 10.0.0.2:8000"
    results = call_procs(
        path,
        [
            ("decide", "HTTP/1.1 200 OK\r\n\r\n10.0.0.2:8000", candidates, "0"),
            ("decide", "HTTP/1.1 200 OK\r\n\r\n10.0.0.3:8000", candidates, "0"),
            ("decide", "HTTP/1.1 200 OK\r\n\r\nfallback", candidates, "0"),
            ("decide", "HTTP/1.1 200 OK\r\n\r\nnone", candidates, "0"),
        ],
    )
    assert results == ["10.0.0.2:8000", "0", "fallback", "0"]


@needs_tclsh
@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_sideband_destinations_use_colon_for_ipv4_and_dot_for_ipv6(path):
    results = call_procs(path, [("sched_destination", "10.0.0.5 8080"), ("sched_destination", "2001:db8::5 8080")])
    assert results == ["10.0.0.5:8080", "2001:db8::5.8080"]


@needs_tclsh
def test_multi_tries_a_random_scheduler_then_the_next_one_and_never_more_than_two():
    members = "{10.0.0.1 8080} {10.0.0.2 8080} {10.0.0.3 8080}"
    orders = call_procs(MULTI, [("pick_schedulers", members)] * 60)
    assert {o for o in orders} <= {
        "10.0.0.1:8080 10.0.0.2:8080",
        "10.0.0.2:8080 10.0.0.3:8080",
        "10.0.0.3:8080 10.0.0.1:8080",
    }
    assert len(set(orders)) == 3, "every scheduler must get to be first"
    assert call_procs(MULTI, [("pick_schedulers", "{10.0.0.1 8080}"), ("pick_schedulers", "")]) == ["10.0.0.1:8080", ""]


@needs_tclsh
@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_the_whole_rule_is_a_complete_tcl_script(path):
    (complete,) = call_procs(path, [("info", "complete", text(path))])
    assert complete == "1"
    assert TCLSH


def test_the_readme_check_command_sends_a_correct_content_length():
    readme = (SINGLE.parent / "README.md").read_text(encoding="utf-8")
    (length, payload) = re.findall(r"Content-Length: (\d+)\\r\\nConnection: close\\r\\n\\r\\n(\{.*?\})'", readme)[0]
    assert int(length) == len(payload)
