"""Fixtures of the fault-injection suite, and the table of measured figures printed at the end of a run.

A fault test proves a behaviour and measures a figure (a p99, a recovery time, a takeover time). It records the
figure with `record_figure(fault, behaviour, value, unit)`. Every record is appended as one JSON line to
`.pytest-faults.json` at the repository root (gitignored; rewritten by each run that records something), and
`pytest_terminal_summary` prints them as the reliability table: fault | behaviour | measured | test.
docs/reliability.md carries the same table from a full `make test-faults` run.

Tests marked `faults` are the slow, thorough ones (`make test-faults`); the unmarked ones are the quick core that
`make test` runs, covering every fault class briefly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llmsched.emulators.engine_state import EngineSpec

from tests.faults.emulated import POOL, BigIP, Engine, LoopThread
from tests.faults.harness import Process, child_env
from tests.faults.redis_ctl import RedisServer
from tests.faults.stack import Stack, start_up, stop_up
from tests.shared.test_sentinel import replicated  # noqa: F401 — the Sentinel group fixture, reused by test_ha.py

RESULTS = Path(__file__).resolve().parents[2] / ".pytest-faults.json"
FIGURES = pytest.StashKey[list]()

RecordFigure = Callable[..., None]


@pytest.fixture()
def record_figure(request: pytest.FixtureRequest) -> RecordFigure:
    """`record_figure(fault, behaviour, value, unit, figure="")`: keep one measured figure for the table."""
    config = request.config

    def record(fault: str, behaviour: str, value: float | str, unit: str = "", figure: str = "") -> None:
        if FIGURES not in config.stash:
            config.stash[FIGURES] = []
            RESULTS.write_text("")
        entry = {
            "fault": fault,
            "behaviour": behaviour,
            "figure": figure,
            "value": round(value, 4) if isinstance(value, float) else value,
            "unit": unit,
            "test": request.node.nodeid.split("::", 1)[-1],
            "file": request.node.path.name,
            "quick": request.node.get_closest_marker("faults") is None,
            "at": time.time(),
        }
        config.stash[FIGURES].append(entry)
        with RESULTS.open("a") as out:
            out.write(json.dumps(entry) + "\n")

    return record


def _measured(entry: dict[str, Any]) -> str:
    value = entry["value"]
    shown = (
        f"{value:.1f}"
        if isinstance(value, float) and abs(value) >= 10
        else (f"{value:.3g}" if isinstance(value, float) else str(value))
    )
    text = f"{shown} {entry['unit']}".strip()
    return f"{text} ({entry['figure']})" if entry["figure"] else text


def format_table(entries: list[dict[str, Any]]) -> list[str]:
    rows = [(e["fault"], e["behaviour"], _measured(e), f"{e['file']}::{e['test']}") for e in entries]
    header = ("fault", "behaviour", "measured", "test")
    widths = [min(60, max(len(r[i]) for r in [header, *rows])) for i in range(4)]
    line = " | ".join("{:<%d}" % w for w in widths)
    out = [line.format(*header), "-+-".join("-" * w for w in widths)]
    out += [line.format(*row) for row in rows]
    return out


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    entries = config.stash.get(FIGURES, [])
    if not entries:
        return
    terminalreporter.section("reliability: measured figures (also in .pytest-faults.json)")
    for line in format_table(entries):
        terminalreporter.write_line(line)


# --- the lab: emulators, Redis and llmsched processes a test builds and breaks --------------------------------------
@pytest.fixture(scope="session")
def loop_thread() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.close()


class Lab:
    """Creates the parts of one fault scenario and tears all of them down afterwards, newest first."""

    def __init__(self, loop: LoopThread, tmp_path: Path) -> None:
        self.loop = loop
        self.tmp_path = tmp_path
        self._cleanups: list[Callable[[], Any]] = []

    def engines(self, n: int = 3, **spec: Any) -> list[Engine]:
        made = []
        for _ in range(n):
            engine = Engine(self.loop, EngineSpec(engine="vllm", **spec))
            engine.start()
            self._cleanups.append(engine.stop)
            made.append(engine)
        return made

    def bigip(self, pools: dict[str, list[str]], password: str = "f5-faults-pw") -> BigIP:
        bigip = BigIP(self.loop, pools, password)
        bigip.start()
        self._cleanups.append(bigip.close)
        return bigip

    def redis(self, **kwargs: Any) -> RedisServer:
        server = RedisServer(**kwargs)
        server.start()
        self._cleanups.append(server.close)
        return server

    def up(self, bigip: BigIP, engines: list[Engine], redis_server: RedisServer, **kwargs: Any) -> Stack:
        stack = start_up(self.tmp_path, bigip, engines, redis_server, **kwargs)
        self._cleanups.append(lambda: stop_up(stack))
        return stack

    def stack(self, n_engines: int = 3, **kwargs: Any) -> Stack:
        """The usual scenario: n vLLM engines in one BIG-IP pool, a Redis of the test's own, `llmsched up`."""
        engines = self.engines(n_engines)
        bigip = self.bigip({POOL: [e.member for e in engines]})
        return self.up(bigip, engines, self.redis(), **kwargs)

    def process(self, argv: list[str], log_name: str, **env: str) -> Process:
        proc = Process(argv, self.tmp_path / log_name, child_env(**env)).start()
        self._cleanups.append(proc.kill)
        return proc

    def add_cleanup(self, cleanup: Callable[[], Any]) -> None:
        self._cleanups.append(cleanup)

    def close(self) -> None:
        for cleanup in reversed(self._cleanups):
            try:
                cleanup()
            except Exception as exc:
                print(f"fault lab teardown: {type(exc).__name__}: {exc}")
        self._cleanups.clear()


@pytest.fixture()
def lab(loop_thread: LoopThread, tmp_path: Path) -> Iterator[Lab]:
    made = Lab(loop_thread, tmp_path)
    yield made
    made.close()


@pytest.fixture(scope="module")
def module_lab(loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One lab for a whole module: its tests take turns breaking and mending the same stack."""
    made = Lab(loop_thread, tmp_path_factory.mktemp("faults-module"))
    yield made
    made.close()
