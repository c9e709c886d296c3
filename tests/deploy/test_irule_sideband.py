"""The iRules under tclsh, talking through real sockets to a real llmsched API (gunicorn) on 127.0.0.1.

Only the TMOS commands are stand-ins (tests/deploy/tcl_harness.py); the rule's own logic, the bytes on the
wire and the scheduler's answers are real. Also here: the BIG-IP health monitor's exact request (README).
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from llmsched.shared.config_model import FallbackConfig

from tests.conftest import free_port
from tests.deploy.tcl_harness import MULTI, ROOT, SINGLE, needs_tclsh, run_irule, with_variables
from tests.helpers import api_process, make_store, seed

pytestmark = needs_tclsh

METRICS = {"waiting_queue": 0.0, "cache_usage": 0.1, "running_req": 1.0}
LLM = [("10.1.1.1", 8000), ("10.1.1.2", 8000)]
MONITOR_SEND = "GET /health HTTP/1.0\r\n\r\n"
MONITOR_RECV = "200 OK"  # the status line: a degraded replica that still routes some pool stays up


@pytest.fixture(scope="module")
def api_port(redis_server) -> Iterator[int]:
    with api_process(redis_server) as port:
        yield port


class FakeServer:
    """A TCP server on 127.0.0.1 that is not the scheduler: it answers `reply` (or nothing, if None)."""

    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.reply is None:
                self.held.append(conn)  # accept, read nothing, answer nothing: a hung scheduler
                continue
            conn.recv(4096)
            conn.sendall(self.reply)
            conn.close()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture()
def hung() -> Iterator[FakeServer]:
    server = FakeServer(None)
    yield server
    server.close()


@pytest.fixture()
def html() -> Iterator[FakeServer]:
    body = b"<html><body>It works</body></html>"
    server = FakeServer(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    yield server
    server.close()


def expected_request(members: list[tuple[str, int]], pool: str = "Pool_vllm") -> str:
    payload = '{"pool_name":"%s","partition":"Common","members":[%s]}' % (
        pool,
        ",".join(f'"{a}:{p}"' for a, p in members),
    )
    return (
        f"POST /scheduler/select HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}"
        f"\r\nConnection: close\r\n\r\n{payload}"
    )


def run(rule, tmp_path, schedulers, llm=LLM, fires=1, extra="", **variables):
    return run_irule(
        with_variables(rule, **variables),
        {"pool_tblb_sched": schedulers, "Pool_vllm": llm},
        fires=fires,
        tmp_path=tmp_path,
        extra=extra,
    )


# ------------------------------------------------------------------ both variants, one scheduler
@pytest.mark.parametrize("rule", [SINGLE, MULTI], ids=lambda p: p.name)
def test_request_is_pinned_to_the_member_the_scheduler_picked(rule, tmp_path, api_port, redis_url):
    seed(make_store(redis_url), {"10.1.1.1:8000": METRICS}, pool="Pool_vllm")
    result = run(rule, tmp_path, [("127.0.0.1", api_port)])
    assert result.sent == [expected_request(LLM)]
    assert result.pools == [["Pool_vllm", "member", "10.1.1.1", "8000"]]
    assert ["llm_nexthop_/Common/vs_llm", "10.1.1.1:8000"] in result.of("TABLE")
    assert result.unclosed() == set()


@pytest.mark.parametrize("rule", [SINGLE, MULTI], ids=lambda p: p.name)
def test_none_from_the_scheduler_leaves_balancing_to_the_default_pool(rule, tmp_path, api_port, redis_url):
    result = run(rule, tmp_path, [("127.0.0.1", api_port)])  # Pool_vllm unknown to the scheduler
    assert result.pools == [["Pool_vllm"]]
    assert result.unclosed() == set()


@pytest.mark.parametrize("rule", [SINGLE, MULTI], ids=lambda p: p.name)
def test_fallback_from_the_scheduler_selects_the_fallback_pool(rule, tmp_path, api_port, redis_url):
    seed(
        make_store(redis_url), {"10.1.1.1:8000": METRICS}, pool="Pool_vllm", fallback=FallbackConfig(pool_fallback=True)
    )
    result = run(rule, tmp_path, [("127.0.0.1", api_port)])
    assert result.pools == [["Pool_fallback_vllm"]]


@pytest.mark.parametrize("rule", [SINGLE, MULTI], ids=lambda p: p.name)
def test_unreachable_scheduler_means_default_pool_and_nothing_left_open(rule, tmp_path):
    result = run(rule, tmp_path, [("127.0.0.1", free_port())])
    assert result.pools == [["Pool_vllm"]]
    assert result.of("OPENED") == []


@pytest.mark.parametrize("rule", [SINGLE, MULTI], ids=lambda p: p.name)
def test_hung_scheduler_times_out_and_its_connection_is_closed(rule, tmp_path, hung):
    result = run(rule, tmp_path, [("127.0.0.1", hung.port)], side_timeout_ms=200)
    assert result.of("RECV") == [["timeout", "0"]]
    assert result.pools == [["Pool_vllm"]]
    assert result.of("OPENED") and result.unclosed() == set()


@pytest.mark.parametrize("rule", [SINGLE, MULTI], ids=lambda p: p.name)
def test_a_200_page_that_is_not_a_member_is_treated_as_none(rule, tmp_path, html):
    result = run(rule, tmp_path, [("127.0.0.1", html.port)])
    assert result.pools == [["Pool_vllm"]]
    assert result.unclosed() == set()


@pytest.mark.parametrize("rule", [SINGLE, MULTI], ids=lambda p: p.name)
def test_no_active_llm_member_asks_nobody(rule, tmp_path, api_port):
    result = run(rule, tmp_path, [("127.0.0.1", api_port)], llm=[])
    assert result.connects == [] and result.pools == []


@pytest.mark.parametrize("rule", [SINGLE, MULTI], ids=lambda p: p.name)
def test_answers_are_reused_per_virtual_server_within_call_interval(rule, tmp_path, api_port, redis_url):
    seed(make_store(redis_url), {"10.1.1.2:8000": METRICS}, pool="Pool_vllm")
    cached = run(rule, tmp_path, [("127.0.0.1", api_port)], fires=3, call_interval_ms=60000)
    assert len(cached.connects) == 1
    assert cached.pools == [["Pool_vllm", "member", "10.1.1.2", "8000"]] * 3
    fresh = run(rule, tmp_path, [("127.0.0.1", api_port)], fires=3, call_interval_ms=0)
    assert len(fresh.connects) == 3


@pytest.mark.parametrize("rule", [SINGLE, MULTI], ids=lambda p: p.name)
def test_a_cached_fallback_answer_still_goes_to_the_fallback_pool(rule, tmp_path, api_port, redis_url):
    seed(
        make_store(redis_url), {"10.1.1.1:8000": METRICS}, pool="Pool_vllm", fallback=FallbackConfig(pool_fallback=True)
    )
    result = run(rule, tmp_path, [("127.0.0.1", api_port)], fires=2, call_interval_ms=60000)
    assert len(result.connects) == 1
    assert result.pools == [["Pool_fallback_vllm"]] * 2


@pytest.mark.parametrize("rule", [SINGLE, MULTI], ids=lambda p: p.name)
def test_timing_and_debug_logging_are_off_by_default_and_switch_on_by_variable(rule, tmp_path, api_port, redis_url):
    seed(make_store(redis_url), {"10.1.1.1:8000": METRICS}, pool="Pool_vllm")
    quiet = run(rule, tmp_path, [("127.0.0.1", api_port)])
    assert quiet.of("LOG") == []
    loud = run(rule, tmp_path, [("127.0.0.1", api_port)], timing=1, debug=1)
    info = [m for level, m in loud.of("LOG") if level == "local0.info"]
    assert len(info) == 1
    assert re.fullmatch(r"Scheduler total duration: \d+ms \(from connection to pool selection\)", info[0])
    assert any(level == "local0.debug" for level, _ in loud.of("LOG"))


# ------------------------------------------------------------------ several schedulers
def test_single_variant_needs_exactly_one_active_scheduler_like_the_original(tmp_path, api_port):
    for schedulers in ([], [("127.0.0.1", api_port), ("127.0.0.1", api_port)]):
        result = run(SINGLE, tmp_path, schedulers)
        assert result.connects == [] and result.pools == [], "the virtual server's default pool decides"


def test_multi_variant_retries_the_next_scheduler_once_when_one_is_down(tmp_path, api_port, redis_url):
    seed(make_store(redis_url), {"10.1.1.1:8000": METRICS}, pool="Pool_vllm")
    dead = ("127.0.0.1", free_port())
    result = run(
        MULTI, tmp_path, [dead, ("127.0.0.1", api_port)], fires=16, call_interval_ms=0, extra="expr {srand(7)}"
    )
    assert result.pools == [["Pool_vllm", "member", "10.1.1.1", "8000"]] * 16
    per_fire = [len([e for e in fire if e[0] == "CONNECT"]) for fire in _fires(result)]
    assert set(per_fire) == {1, 2}, "some calls must have hit the dead scheduler first and retried"
    assert result.unclosed() == set()


def test_multi_variant_retries_after_a_hung_scheduler(tmp_path, api_port, redis_url, hung):
    seed(make_store(redis_url), {"10.1.1.1:8000": METRICS}, pool="Pool_vllm")
    result = run(
        MULTI,
        tmp_path,
        [("127.0.0.1", hung.port), ("127.0.0.1", api_port)],
        fires=6,
        call_interval_ms=0,
        side_timeout_ms=100,
        extra="expr {srand(3)}",
    )
    assert result.pools == [["Pool_vllm", "member", "10.1.1.1", "8000"]] * 6
    assert ["timeout", "0"] in result.of("RECV")
    assert result.unclosed() == set()


def test_multi_variant_gives_up_after_two_schedulers_and_uses_the_default_pool(tmp_path):
    dead = [("127.0.0.1", free_port()) for _ in range(3)]
    result = run(MULTI, tmp_path, dead, fires=4, call_interval_ms=0)
    assert result.pools == [["Pool_vllm"]] * 4
    assert [len([e for e in fire if e[0] == "CONNECT"]) for fire in _fires(result)] == [2] * 4


def _fires(result) -> list[list[list[str]]]:
    fires: list[list[list[str]]] = []
    for event in result.events:
        if event[0] == "FIRE":
            fires.append([])
        elif fires:
            fires[-1].append(event)
    return fires


# ------------------------------------------------------------------ the scheduler pool's health monitor
def monitor_probe(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(MONITOR_SEND.encode())
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data


def test_the_readme_monitor_marks_a_replica_up_only_when_it_is_ready(api_port, redis_url):
    readme = (ROOT / "deploy" / "f5" / "README.md").read_text(encoding="utf-8")
    assert "GET /health HTTP/1.0\\r\\n\\r\\n" in readme and MONITOR_RECV in readme
    not_ready = monitor_probe(api_port)
    assert not_ready.split(b" ")[1] == b"503" and MONITOR_RECV.encode() not in not_ready
    seed(make_store(redis_url), {"10.1.1.1:8000": METRICS}, pool="Pool_vllm")
    # Each worker answers /health from its memory, which follows the pool's publication within a reload; BIG-IP
    # probes every 5 s (the monitor's interval), so the replica is up by the next probe.
    deadline = time.monotonic() + 5.0
    while (ready := monitor_probe(api_port)).split(b" ")[1] != b"200" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.split(b" ")[1] == b"200" and MONITOR_RECV.encode() in ready
