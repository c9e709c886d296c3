"""Fault-injection harness: plain HTTP, bounded waits, percentiles, and llmsched commands as real processes.

The other parts of the harness: `emulated` (BIG-IP and engine emulators in a background event loop, breakable and
restartable), `redis_ctl` (a Redis of the test's own to stop, pause or slow down) and `stack`
(`llmsched up` against them). Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import http.client as httpclient
import json
import os
import signal
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.helpers import descendants

REPO = Path(__file__).resolve().parents[2]


# --- small HTTP client (stdlib only: one connection per request, like the iRule's sideband call) ----------------
@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]
    seconds: float

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str,
    url: str,
    body: Any = None,
    *,
    timeout: float = 5.0,
    ca: str | None = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> Reply:
    """One request on a fresh connection; `body` is sent as JSON, `raw` as is."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        conn: httpclient.HTTPConnection = httpclient.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=ssl.create_default_context(cafile=ca)
        )
    else:
        conn = httpclient.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    payload = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    hdrs = {
        "Connection": "close",
        **({"Content-Type": "application/json"} if body is not None else {}),
        **(headers or {}),
    }
    started = time.perf_counter()
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=payload, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return Reply(resp.status, data, {k.lower(): v for k, v in resp.getheaders()}, time.perf_counter() - started)
    finally:
        conn.close()


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.02) -> Any:
    """Poll `check` until it returns something truthy; its value, or AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if value := check():
                return value
        except (OSError, httpclient.HTTPException, ValueError) as exc:
            last_error = exc
        time.sleep(every)
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what}" + (f" (last error: {last_error!r})" if last_error else "")
    )


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100) by the nearest-rank method: p99 of 500 samples is the 495th smallest."""
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def latency_summary(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50_ms": statistics.median(samples) * 1000,
        "p99_ms": percentile(samples, 99) * 1000,
        "max_ms": max(samples) * 1000,
    }


# --- processes ---------------------------------------------------------------------------------------------------
def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def child_pid(up_pid: int, command: str) -> int:
    """The pid of `up`'s child running `llmsched <command>` (the gunicorn master for `api`)."""
    needle = "gunicorn" if command == "api" else f"llmsched.cli.main {command} --config"
    pids = [p for p in descendants(up_pid) if needle in cmdline(p)]
    if command == "api":
        pids = [p for p in pids if "gunicorn" not in cmdline(_parent(p))]
    assert pids, f"no {command} process under up (pid {up_pid})"
    return min(pids)


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LLMSCHED_NAMESPACE")}
    # Telemetry endpoints off: tests run many processes at once and must listen on 127.0.0.1 only.
    env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", LLMSCHED_METRICS_PORT="0", **extra)
    return env


class Process:
    """One llmsched command as a real process, its stdout and stderr in one log file."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str]) -> None:
        self.argv = argv
        self.log = log
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self) -> Process:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "llmsched.cli.main", *self.argv],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def terminate(self, timeout: float = 10.0) -> tuple[int | None, float]:
        """SIGTERM; (exit code, seconds until it exited). Kills it (code None) if it overstays `timeout`."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None, time.monotonic() - started
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            for pid in descendants(self.proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.kill()
            self.proc.wait(10)
