"""SIGTERM to `llmsched api` (gunicorn): a request in flight is still answered, then every process exits within
5 s (gunicorn's graceful_timeout). Real gunicorn, a real Redis, a client that sends its body in two halves."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import free_port
from tests.helpers import make_store, seed

REPO = Path(__file__).resolve().parents[2]
MEMBER = "10.0.0.1:8000"


def connect_when_up(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "the API did not start"
            time.sleep(0.1)


def test_sigterm_answers_the_request_in_flight_then_exits_within_5_seconds(redis_url: str) -> None:
    seed(make_store(redis_url), {MEMBER: {"waiting_queue": 0.0, "cache_usage": 0.1, "running_req": 1.0}})
    port = free_port()
    api = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmsched.cli.main",
            "api",
            "--redis-url",
            redis_url,
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--read-timeout",  # the body arrives 0.8 s after the headers: on a busy machine past the 1 s default
            "5",
        ],
        cwd=REPO,
        env={**os.environ, "LLMSCHED_LOG_LEVEL": "warning", "LLMSCHED_METRICS_PORT": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        connect_when_up(port, api).close()
        body = json.dumps({"pool_name": "p1", "partition": "Common", "members": [MEMBER]}).encode()
        client = connect_when_up(port, api)
        client.sendall(
            b"POST /scheduler/select HTTP/1.0\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )
        time.sleep(0.3)  # the worker has the request and waits for the rest of the body
        api.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(0.5)
        client.sendall(body[10:])
        answer = b""
        while chunk := client.recv(4096):
            answer += chunk
        client.close()
        code = api.wait(timeout=10)
        took = time.monotonic() - signalled
        print(f"\nAPI: the request in flight was answered, the API exited {took:.2f} s after SIGTERM")
        assert answer.startswith(b"HTTP/1.0 200") or answer.startswith(b"HTTP/1.1 200"), answer
        assert answer.endswith(MEMBER.encode())
        assert code == 0 and took < 5.0
    finally:
        if api.poll() is None:
            api.kill()
            api.wait()
