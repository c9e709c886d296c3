"""How select reads a request: chunked bodies, short bodies, content types, methods, odd candidates. No input
gets a 5xx, and a request's cost is bounded by the pool, whatever the request holds."""

from __future__ import annotations

import importlib
import json
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.live_api import live_api
from tests.helpers import make_store, seed

M = {"waiting_queue": 0.0, "cache_usage": 0.1, "running_req": 1.0}
MEMBERS = ["10.0.0.1:8000", "10.0.0.2:8000"]
decide_module = importlib.import_module("llmsched.shared.routing.decide")  # the package re-exports a function so named
BODY = {"pool_name": "p1", "partition": "Common", "members": MEMBERS}


@pytest.fixture()
def seeded(client, store):
    seed(store, {m: M for m in MEMBERS})
    return client


def test_a_text_or_form_content_type_is_422_like_the_original(seeded):
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        r = seeded.post("/scheduler/select", data=json.dumps(BODY), content_type=content_type)
        assert r.status_code == 422, content_type
        assert r.json["detail"][0]["type"] == "model_attributes_type"
    r = seeded.post("/scheduler/select", data=json.dumps(BODY), content_type="application/json; charset=utf-8")
    assert r.data.decode() in MEMBERS


def test_other_methods_are_405_with_allow_post(seeded):
    for method in ("GET", "PUT", "DELETE"):
        r = seeded.open("/scheduler/select", method=method)
        assert r.status_code == 405 and r.headers["Allow"] == "POST", method


@pytest.mark.parametrize("port", ["²", "８０００", "٨٠٠٠", "8000 ", "+8000", "-1", "99999999999999999999"])
def test_a_port_that_is_not_ascii_digits_is_skipped_like_any_bad_candidate(seeded, port):
    r = seeded.post("/scheduler/select", json={**BODY, "members": [f"10.0.0.1:{port}"]})
    assert (r.status_code, r.data) == (200, b"none")


def test_candidates_that_are_not_pool_members_cost_no_address_parsing(seeded, monkeypatch):
    parsed = []
    real = decide_module.parse_candidate
    monkeypatch.setattr(decide_module, "parse_candidate", lambda text: (parsed.append(text), real(text))[1])
    strangers = [f"2001:db8::{i:x}:8000" for i in range(9_000)] + [f"fd00::{i:x}:9999" for i in range(900)]
    r = seeded.post("/scheduler/select", json={**BODY, "members": [*strangers, "10.0.0.01:8000", *MEMBERS]})
    assert r.data.decode() in MEMBERS
    assert len(parsed) <= len(MEMBERS)  # at most one parse per pool member, whatever the request holds


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "pool_name": json_values | st.just("p1"),
        "partition": json_values | st.just("Common"),
        "members": st.lists(st.text(max_size=40) | json_values, max_size=8),
        "model": json_values,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies | json_values, raw=st.binary(max_size=60))
def test_no_input_gets_a_5xx(seeded, body, raw):
    assert seeded.post("/scheduler/select", json=body).status_code < 500
    assert seeded.post("/scheduler/select", data=raw, content_type="application/json").status_code < 500


@pytest.fixture()
def api_port(redis_url):
    seed(make_store(redis_url), {m: M for m in MEMBERS})
    with live_api(redis_url, workers=1) as (base, _):
        yield int(base.rsplit(":", 1)[1])


def exchange(port: int, request: bytes, half_close: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    return reply


def test_a_chunked_body_is_decided(api_port):
    payload = json.dumps(BODY).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (payload[:20], payload[20:])) + b"0\r\n\r\n"
    reply = exchange(
        api_port,
        b"POST /scheduler/select HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks,
    )
    assert reply.startswith(b"HTTP/1.1 200"), reply
    assert reply.rsplit(b"\r\n\r\n", 1)[1].decode() in MEMBERS


def test_a_body_shorter_than_its_content_length_is_400_not_a_decision_from_part_of_it(api_port):
    payload = json.dumps(BODY).encode()
    reply = exchange(
        api_port,
        b"POST /scheduler/select HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (len(payload) + 10, payload),
        half_close=True,
    )
    assert reply.startswith(b"HTTP/1.0 400"), reply
    assert b"ended after %d of %d bytes" % (len(payload), len(payload) + 10) in reply
