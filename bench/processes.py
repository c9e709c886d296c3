"""Process plumbing the benchmarks share: free ports, waiting for a listener, a private redis-server, clean stops."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not listen on {port}")


@contextlib.contextmanager
def stopping() -> Iterator[Callable[[subprocess.Popen], subprocess.Popen]]:
    """Yields `register(proc) -> proc`; every registered process is terminated (last first) on the way out."""
    procs: list[subprocess.Popen] = []

    def register(proc: subprocess.Popen) -> subprocess.Popen:
        procs.append(proc)
        return proc

    try:
        yield register
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=10)


@contextlib.contextmanager
def private_redis() -> Iterator[tuple[str, Path]]:
    """A redis-server on a free 127.0.0.1 port with no persistence, in a temp dir; yields (URL, that dir)."""
    workdir = Path(tempfile.mkdtemp(prefix="llmsched-bench-"))
    port = free_port()
    try:
        with stopping() as register:
            proc = register(
                subprocess.Popen(
                    [
                        "redis-server",
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        str(workdir),
                    ],
                    stdout=subprocess.DEVNULL,
                )
            )
            wait_port(port, proc, "redis-server")
            yield f"redis://127.0.0.1:{port}/0", workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by `pid` and every process below it, from /proc (0 for a gone one)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {pid}, {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - tree
        tree |= frontier
    return sum(times.get(p, 0.0) for p in tree)
