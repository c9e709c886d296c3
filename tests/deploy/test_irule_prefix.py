"""The iRules' opt-in prefix hints: fingerprints and model of the request body in the select JSON.

The pure procs run under tclsh and are compared with `fingerprints()` below, an independent Python statement of
the wire contract in deploy/f5/README.md (the scheduler side implements the same definition). The whole rule
then runs against a real llmsched API: with the switch off the bytes are the original's, with it on every
request without a readable body still gets today's request.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import zlib
from collections.abc import Iterator

import pytest

from tests.deploy.tcl_harness import MULTI, SINGLE, TCLSH, call_procs, needs_tclsh, run_irule, with_variables
from tests.helpers import api_process, make_store, seed

pytestmark = needs_tclsh

RULES = [SINGLE, MULTI]
BLOCK = 512
MAX_FINGERPRINTS = 64
METRICS = {"waiting_queue": 0.0, "cache_usage": 0.1, "running_req": 1.0}
LLM = [("10.1.1.1", 8000), ("10.1.1.2", 8000)]
MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def fingerprints(body: bytes, cap: int = 32768) -> list[str]:
    """The contract: sha1 chained over full 512-byte blocks of the first min(cap, 32768) bytes, 8 bytes in hex."""
    usable = body[: min(cap, BLOCK * MAX_FINGERPRINTS)]
    out, digest = [], b""
    for i in range(len(usable) // BLOCK):
        digest = hashlib.sha1(digest + usable[i * BLOCK : (i + 1) * BLOCK]).digest()
        out.append(digest[:8].hex())
    return out


def chat_body(system: str, question: str, model: str = MODEL) -> bytes:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    return json.dumps({"model": model, "messages": messages, "max_tokens": 64}).encode()


def tcl_fingerprints(rule, body: bytes, cap: str = "32768") -> list[str]:
    """prefix_fingerprints on raw bytes (latin-1 maps each byte to the one character Tcl's byte strings hold)."""
    (inner,) = call_procs(rule, [("prefix_fingerprints", body.decode("latin-1"), cap)])
    return json.loads(f"[{inner}]")


SHARED_SYSTEM = "You are a support agent for ACME. " * 120  # ~4 KB of shared prefix


# ------------------------------------------------------------------ the fingerprints
@pytest.mark.parametrize("rule", RULES, ids=lambda p: p.name)
def test_the_same_body_gives_the_same_fingerprints_as_the_contract_says(rule):
    body = chat_body(SHARED_SYSTEM, "Where is my order 1234?")
    first, again = tcl_fingerprints(rule, body), tcl_fingerprints(rule, body)
    assert first == again == fingerprints(body)
    assert len(first) == len(body) // BLOCK and all(len(f) == 16 for f in first)


@pytest.mark.parametrize("rule", RULES, ids=lambda p: p.name)
def test_bodies_sharing_a_prefix_share_exactly_the_leading_fingerprints_of_their_common_full_blocks(rule):
    a = chat_body(SHARED_SYSTEM, "Where is my order 1234? " * 40)
    b = chat_body(SHARED_SYSTEM, "Cancel my subscription, please. " * 40)
    common = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
    fa, fb = tcl_fingerprints(rule, a), tcl_fingerprints(rule, b)
    shared = common // BLOCK
    assert shared >= 7
    assert fa[:shared] == fb[:shared]
    # chained: once the bodies differ, every later fingerprint differs too
    assert all(x != y for x, y in zip(fa[shared:], fb[shared:]))


@pytest.mark.parametrize("rule", RULES, ids=lambda p: p.name)
def test_a_change_late_in_the_body_keeps_the_fingerprints_before_it_and_changes_all_after(rule):
    body = bytes(range(256)) * 40  # every byte value: the digest must see bytes, not characters
    changed = body[:5000] + b"X" + body[5001:]
    fa, fb = tcl_fingerprints(rule, body), tcl_fingerprints(rule, changed)
    assert fa == fingerprints(body)
    assert fa[: 5000 // BLOCK] == fb[: 5000 // BLOCK]
    assert all(x != y for x, y in zip(fa[5000 // BLOCK :], fb[5000 // BLOCK :]))


@pytest.mark.parametrize("rule", RULES, ids=lambda p: p.name)
def test_only_the_first_cap_bytes_count_and_never_more_than_64_fingerprints(rule):
    big = chat_body(SHARED_SYSTEM * 30, "question")  # ~120 KB
    assert len(tcl_fingerprints(rule, big)) == MAX_FINGERPRINTS
    assert tcl_fingerprints(rule, big, "1000000") == fingerprints(big)  # a larger cap is clamped to 32 KB
    assert tcl_fingerprints(rule, big, "2048") == fingerprints(big, 2048) == fingerprints(big)[:4]
    tail_changed = big[:40000] + b"different tail"
    assert tcl_fingerprints(rule, tail_changed) == tcl_fingerprints(rule, big)


@pytest.mark.parametrize("rule", RULES, ids=lambda p: p.name)
def test_a_body_shorter_than_one_block_has_no_fingerprint(rule):
    assert call_procs(rule, [("prefix_fingerprints", "x" * 511, "32768"), ("prefix_fingerprints", "", "32768")]) == [
        "",
        "",
    ]


# ------------------------------------------------------------------ what is read, the model, the JSON
# (Content-Length, chunked, Expect, cap) -> bytes to collect
COLLECT_CASES = [
    ("5000", "0", "0", "32768", "5000"),
    ("100000", "0", "0", "32768", "32768"),
    ("100000", "0", "0", "4096", "4096"),
    ("100000", "0", "0", "1000000", "32768"),  # nothing past 32 KB is used, so nothing more is read
    ("0800", "0", "0", "32768", "800"),  # a leading zero is decimal, not octal
    ("", "0", "0", "32768", "0"),  # no body (GET)
    ("0", "0", "0", "32768", "0"),
    ("5000", "1", "0", "32768", "0"),  # chunked
    ("5000", "0", "1", "32768", "0"),  # Expect: 100-continue: the client waits before it sends the body
    ("12ab", "0", "0", "32768", "0"),
    ("99999999999999999999", "0", "0", "32768", "0"),
    ("5000", "0", "0", "lots", "0"),
]


@pytest.mark.parametrize("rule", RULES, ids=lambda p: p.name)
def test_only_a_fixed_length_body_is_collected_and_at_most_the_cap(rule):
    results = call_procs(rule, [("collect_length", *case[:4]) for case in COLLECT_CASES])
    assert results == [case[4] for case in COLLECT_CASES]


MODEL_CASES = [
    (chat_body("hi", "q"), MODEL),
    (b'{ "model" :\n "qwen2.5:7b@prod", "prompt": "x"}', "qwen2.5:7b@prod"),
    (b'{"prompt": "no model here"}', ""),
    (b'{"model": "has space"}', ""),
    (b'{"model": "quo\\"te"}', ""),  # would need JSON escaping: left out
    ('{"model": "modèle"}'.encode(), ""),
    (b'{"model": ""}', ""),
    (b'{"model": 7}', ""),
    (b'{"model": "' + b"m" * 257 + b'"}', ""),
]


@pytest.mark.parametrize("rule", RULES, ids=lambda p: p.name)
def test_the_model_is_the_first_model_key_when_it_is_a_plain_name(rule):
    results = call_procs(rule, [("body_model", body.decode("latin-1")) for body, _ in MODEL_CASES])
    assert results == [model for _, model in MODEL_CASES]


@pytest.mark.parametrize("rule", RULES, ids=lambda p: p.name)
def test_hints_extend_the_payload_as_valid_json_and_no_hint_leaves_it_as_built(rule):
    payload = '{"pool_name":"Pool_vllm","partition":"Common","members":["10.1.1.1:8000"]}'
    plain, model_only, both = call_procs(
        rule,
        [
            ("with_hints", payload, "", ""),
            ("with_hints", payload, "", MODEL),
            ("with_hints", payload, '"0011223344556677","8899aabbccddeeff"', MODEL),
        ],
    )
    assert plain == payload
    assert json.loads(model_only) == json.loads(payload) | {"model": MODEL}
    assert both == payload[:-1] + f',"model":"{MODEL}","prefix":["0011223344556677","8899aabbccddeeff"]}}'
    assert json.loads(both)["prefix"] == ["0011223344556677", "8899aabbccddeeff"]


def test_tcl_zlib_crc32_is_bigips_crc32_masked_to_32_bits():
    # BIG-IP's `crc32` is CRC-32 (poly 0x04c11db7, reflected), returned sign-extended: the check string
    # "123456789" gives -873187034 there (0xcbf43926 with the top bit set). Tcl's `zlib crc32` returns the
    # unsigned value, equal to BIG-IP's after `expr {0xffffffff & [crc32 $msg]}` (README, "Why sha1").
    proc = subprocess.run(
        [TCLSH],
        input="puts [zlib crc32 123456789]\nputs [expr {0xffffffff & -873187034}]\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    tcl_crc, bigip_masked = proc.stdout.split()
    assert int(tcl_crc) == int(bigip_masked) == zlib.crc32(b"123456789") == 0xCBF43926


# ------------------------------------------------------------------ the whole rule against a real API
@pytest.fixture(scope="module")
def api_port(redis_server) -> Iterator[int]:
    with api_process(redis_server) as port:
        yield port


def today(members=LLM) -> str:
    payload = '{"pool_name":"Pool_vllm","partition":"Common","members":[%s]}' % ",".join(
        f'"{a}:{p}"' for a, p in members
    )
    return request_bytes(payload)


def request_bytes(payload: str) -> str:
    return (
        f"POST /scheduler/select HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}"
        f"\r\nConnection: close\r\n\r\n{payload}"
    )


def post(body: bytes, **headers: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}


def run(rule, tmp_path, api_port, body=b"", headers=None, fires=1, extra="", **variables):
    return run_irule(
        with_variables(rule, **variables),
        {"pool_tblb_sched": [("127.0.0.1", api_port)], "Pool_vllm": LLM},
        fires=fires,
        tmp_path=tmp_path,
        extra=extra,
        headers=headers,
        body=body,
    )


@pytest.fixture()
def seeded(redis_url) -> None:
    seed(make_store(redis_url), {"10.1.1.2:8000": METRICS}, pool="Pool_vllm")


BODY = chat_body(SHARED_SYSTEM, "Where is my order 1234?")


@pytest.mark.parametrize("rule", RULES, ids=lambda p: p.name)
def test_switch_off_sends_todays_exact_request_and_never_touches_the_body(rule, tmp_path, api_port, seeded):
    result = run(rule, tmp_path, api_port, body=BODY, headers=post(BODY))
    assert result.sent == [today()]
    assert result.of("COLLECT") == [] and result.of("RELEASE") == []
    assert result.pools == [["Pool_vllm", "member", "10.1.1.2", "8000"]]


@pytest.mark.parametrize("rule", RULES, ids=lambda p: p.name)
def test_switch_on_sends_the_fingerprints_and_model_and_the_api_still_picks(rule, tmp_path, api_port, seeded):
    result = run(rule, tmp_path, api_port, body=BODY, headers=post(BODY), prefix_hints=1)
    assert result.of("COLLECT") == [[str(len(BODY))]]
    (sent,) = result.sent
    payload = sent.split("\r\n\r\n", 1)[1]
    assert sent == request_bytes(payload)
    assert json.loads(payload) == {
        "pool_name": "Pool_vllm",
        "partition": "Common",
        "members": ["10.1.1.1:8000", "10.1.1.2:8000"],
        "model": MODEL,
        "prefix": fingerprints(BODY),
    }
    # the llmsched API accepts the extra fields: the request is pinned to its pick, then released
    assert result.pools == [["Pool_vllm", "member", "10.1.1.2", "8000"]]
    assert result.of("RELEASE") == [[]]
    assert result.unclosed() == set()


@pytest.mark.parametrize("rule", RULES, ids=lambda p: p.name)
def test_a_large_body_is_read_only_up_to_the_cap(rule, tmp_path, api_port, seeded):
    big = chat_body(SHARED_SYSTEM * 30, "question")
    result = run(rule, tmp_path, api_port, body=big, headers=post(big), prefix_hints=1, prefix_body_cap=8192)
    assert result.of("COLLECT") == [["8192"]]
    payload = json.loads(result.sent[0].split("\r\n\r\n", 1)[1])
    assert payload["prefix"] == fingerprints(big)[:16]


@pytest.mark.parametrize(
    "case",
    [
        ("GET, no body", b"", {}),
        ("chunked", BODY, {"Transfer-Encoding": "chunked"}),
        ("Expect: 100-continue", BODY, post(BODY, Expect="100-continue")),
    ],
    ids=lambda c: c[0],
)
@pytest.mark.parametrize("rule", RULES, ids=lambda p: p.name)
def test_switch_on_without_a_readable_body_sends_todays_request(rule, case, tmp_path, api_port, seeded):
    _, body, headers = case
    result = run(rule, tmp_path, api_port, body=body, headers=headers, prefix_hints=1)
    assert result.of("COLLECT") == []
    assert result.sent == [today()]
    assert result.pools == [["Pool_vllm", "member", "10.1.1.2", "8000"]]


@pytest.mark.parametrize("rule", RULES, ids=lambda p: p.name)
def test_a_failing_collect_still_schedules_the_request_without_a_hint(rule, tmp_path, api_port, seeded):
    result = run(
        rule, tmp_path, api_port, body=BODY, headers=post(BODY), prefix_hints=1, extra='set ::collect_error "busy"'
    )
    assert result.of("COLLECT") == [[str(len(BODY))]]
    assert result.sent == [today()]
    assert result.pools == [["Pool_vllm", "member", "10.1.1.2", "8000"]]
    assert result.of("RELEASE") == []


@pytest.mark.parametrize("rule", RULES, ids=lambda p: p.name)
def test_a_short_body_sends_its_model_only(rule, tmp_path, api_port, seeded):
    short = chat_body("hi", "q")
    result = run(rule, tmp_path, api_port, body=short, headers=post(short), prefix_hints=1)
    payload = json.loads(result.sent[0].split("\r\n\r\n", 1)[1])
    assert payload["model"] == MODEL and "prefix" not in payload


@pytest.mark.parametrize("rule", RULES, ids=lambda p: p.name)
def test_requests_with_fingerprints_are_always_asked_but_plain_ones_reuse_the_cached_answer(
    rule, tmp_path, api_port, seeded
):
    hinted = run(
        rule, tmp_path, api_port, body=BODY, headers=post(BODY), fires=3, prefix_hints=1, call_interval_ms=60000
    )
    assert len(hinted.sent) == 3
    plain = run(rule, tmp_path, api_port, fires=3, prefix_hints=1, call_interval_ms=60000)
    assert len(plain.sent) == 1
    assert plain.pools == [["Pool_vllm", "member", "10.1.1.2", "8000"]] * 3
