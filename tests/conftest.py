"""Test fixtures shared by the whole suite: a real redis-server started for the test session."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Iterator

import pytest
import redis

from llmsched.shared.keys import Keys


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A private redis-server on 127.0.0.1 for the whole session; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run `make test` (it installs it) or apt-get install redis-server")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="llmsched-test-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
    os.environ["LLMSCHED_TEST_REDIS_URL"] = url
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture()
def redis_url(redis_server: str) -> str:
    """The session's Redis URL, flushed before each test so tests never see each other's keys. The flush is
    announced as a config publish would be, so an API process kept across tests drops what it held in memory."""
    client = redis.Redis.from_url(redis_server)
    client.flushall()
    client.publish(Keys().changes, "*")
    return redis_server


@pytest.fixture(autouse=True)
def _routing_states_stop_with_their_test(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An in-process API (create_app) starts a RoutingState whose threads tick every 5 ms until the app is garbage
    collected: stop the ones a test started when it ends, so they neither load the machine for later tests nor
    read the shared Redis server while another test watches it (MONITOR)."""
    from llmsched.api.routing_state import RoutingState

    started: weakref.WeakSet[RoutingState] = weakref.WeakSet()  # weak: a test may drop its state on purpose
    start = RoutingState.start

    def recorded(self: RoutingState) -> RoutingState:
        started.add(self)
        return start(self)

    monkeypatch.setattr(RoutingState, "start", recorded)
    yield
    for state in list(started):
        state.stop()
