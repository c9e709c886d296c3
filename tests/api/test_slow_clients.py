"""Clients that connect and send nothing, or send their request a byte at a time, hold no worker: a real
`llmsched api` (gunicorn, 2 workers, the default gevent worker) keeps answering every decision and /health while
150 such connections are held, and closes a connection whose body does not arrive within the read timeout."""

from __future__ import annotations

import http.client
import json
import socket

import pytest

from llmsched.bench.slow_clients import BODY_HEADERS, SlowClients

from tests.api.live_api import live_api
from tests.helpers import make_store, seed

M = {"waiting_queue": 0.0, "cache_usage": 0.1, "running_req": 1.0}
MEMBERS = ["10.0.0.1:8000", "10.0.0.2:8000"]
BODY = json.dumps({"pool_name": "p1", "partition": "Common", "members": MEMBERS})


def select(port: int) -> tuple[int, str]:
    # The timeout only keeps a broken server from hanging the test; the assertion is on the answers.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/scheduler/select", BODY, {"Content-Type": "application/json", "Connection": "close"})
    response = conn.getresponse()
    answer = (response.status, response.read().decode())
    conn.close()
    return answer


@pytest.fixture()
def api(redis_url):
    seed(make_store(redis_url), {m: M for m in MEMBERS})
    with live_api(redis_url, workers=2) as (base, _proc):
        yield int(base.rsplit(":", 1)[1])


def test_decisions_and_health_are_answered_while_150_slow_connections_are_held(api):
    with SlowClients(api, idle=50, slow_header=50, slow_body=50) as slow:
        answers = [select(api) for _ in range(100)]
        conn = http.client.HTTPConnection("127.0.0.1", api, timeout=10)
        conn.request("GET", "/health")
        health = conn.getresponse().status
        held = slow.held()
    assert answers == [(200, a) for _, a in answers] and {a for _, a in answers} <= set(MEMBERS)
    assert health == 200
    assert held >= 100  # the pressure was really there while the decisions were asked


def test_a_body_that_does_not_arrive_within_the_read_timeout_is_answered_408(api):
    with socket.create_connection(("127.0.0.1", api), timeout=10) as sock:
        sock.sendall(BODY_HEADERS + b'{"pool_name"')
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 408"), reply
    assert b"not received within 1 s" in reply


def test_headers_that_do_not_arrive_within_the_read_timeout_close_the_connection(api):
    with socket.create_connection(("127.0.0.1", api), timeout=10) as sock:
        sock.sendall(b"POST /scheduler/select HTTP/1.1\r\nHost: x\r\n")
        assert sock.recv(4096) == b""


def test_a_source_over_its_connection_cap_gets_503_at_once(redis_url):
    seed(make_store(redis_url), {m: M for m in MEMBERS})
    env = {"LLMSCHED_API_MAX_CONNECTIONS_PER_SOURCE": "5", "LLMSCHED_API_READ_TIMEOUT": "30"}
    with live_api(redis_url, workers=1, env=env) as (base, _proc):
        port = int(base.rsplit(":", 1)[1])
        held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(5)]
        try:
            for sock in held:  # each one is accepted and waits for its headers: a byte proves it is being read
                sock.sendall(b"P")
            extra = socket.create_connection(("127.0.0.1", port), timeout=10)
            reply = extra.recv(4096)
            extra.close()
        finally:
            for sock in held:
                sock.close()
    assert reply.startswith(b"HTTP/1.1 503") and b"too many connections from this address" in reply
