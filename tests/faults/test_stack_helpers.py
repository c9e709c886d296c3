"""The fault suite's own readers of `llmsched up`'s log: a reader that never matches would make every "no restart"
assertion vacuous."""

from __future__ import annotations

import io
import subprocess
import sys

from loguru import logger

from llmsched.cli.up import Child
from llmsched.shared.logging import TEXT_FORMAT

from tests.faults.stack import RESTART_LINE


def test_the_restart_reader_finds_the_line_up_logs_when_a_child_exits() -> None:
    out = io.StringIO()
    sink = logger.add(out, format=TEXT_FORMAT, level="INFO")
    try:
        child = Child("scorer-1", [sys.executable, "-c", "raise SystemExit(3)"])
        child.proc = subprocess.Popen(child.argv)
        child.proc.wait()
        child.reap(child.started_at + 0.5, logger.bind(process="up"))
    finally:
        logger.remove(sink)
    found = [f"{m.group(1)} {m.group(2)}" for m in RESTART_LINE.finditer(out.getvalue())]
    assert found == ["scorer-1 code 3"], out.getvalue()
