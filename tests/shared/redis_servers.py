"""Redis processes a test owns, to break on purpose: a server (kill -9, SIGSTOP/SIGCONT, start again empty on
the same port), a replica of it, and Sentinels watching it. All on 127.0.0.1, free ports, temp dirs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from tests.conftest import free_port


def _binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    return binary


class RedisProc:
    """One redis-server (or, with `sentinel_of`, a Sentinel in `redis-server --sentinel` mode)."""

    def __init__(
        self, replica_of: int | None = None, sentinel_of: tuple[str, int] | None = None, quorum: int = 2
    ) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="llmsched-test-redis-"))
        self.replica_of = replica_of
        self.sentinel_of = sentinel_of
        self.quorum = quorum
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, timeout: float = 1.0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=timeout, socket_connect_timeout=timeout)

    def _argv(self) -> list[str]:
        if self.sentinel_of is None:
            argv = [
                _binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--enable-debug-command",
                "local",
            ]
            return argv + (["--replicaof", "127.0.0.1", str(self.replica_of)] if self.replica_of else [])
        # Sentinel rewrites its config file, so it needs one of its own; short timeouts make failover quick.
        name, master_port = self.sentinel_of
        conf = self.dir / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor {name} 127.0.0.1 {master_port} {self.quorum}\n"
            f"sentinel down-after-milliseconds {name} 1000\n"
            f"sentinel failover-timeout {name} 3000\n"
            f"sentinel parallel-syncs {name} 1\n"
        )
        return [_binary(), str(conf), "--sentinel"]

    def start(self, timeout: float = 10.0) -> RedisProc:
        """Start (again: empty, no persistence) on the same port; returns once it answers PING."""
        with open(self.dir / "server.log", "ab") as log:
            self.proc = subprocess.Popen(self._argv(), stdout=log, stderr=subprocess.STDOUT)
        client = self.client(0.5)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                return self
            except redis.RedisError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(
                        f"redis-server on {self.port} did not start: {(self.dir / 'server.log').read_text()[-1000:]}"
                    ) from None
                time.sleep(0.05)

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a paused process must be able to die
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
