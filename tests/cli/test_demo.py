"""`llmsched demo --duration S`: the whole stack with emulators and traffic, stopping by itself; its banner says
where the status page and Redis are, and its screen shows config reloads, accepted and rejected."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from llmsched.cli.demo_feed import UpLog, reload_event

REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_traffic_prints_where_to_look_shows_config_reloads_and_stops_by_itself(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(PYTHONPATH=str(REPO), TMPDIR=str(tmp_path))
    demo = subprocess.Popen(
        [sys.executable, "-m", "llmsched.cli.main", "demo", "--duration", "14", "--clients", "8"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(demo.stdout.readline, "")), daemon=True)
    reader.start()

    def wait_for(pattern: str, timeout: float = 60.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(lines):
                if m := re.search(pattern, line):
                    return m
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} not printed:\n{''.join(lines)}")

    try:
        config = Path(wait_for(r"config:\s+(\S+scheduler-config\.yaml)").group(1))
        text = config.read_text()
        config.write_text(text.replace("name: s2", "name: s9"))  # an unknown mode: rejected
        wait_for(r"config reload REJECTED \(1 problem\(s\)\)")
        wait_for(r"^\s+modes\[0\]\.name: ")
        config.write_text(text.replace("w_a: 0.4", "w_a: 0.5"))  # valid: accepted
        wait_for(r"config reload ACCEPTED: changed modes")
        assert demo.wait(90) == 0, demo.stderr.read()
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    reader.join(5)
    out = "".join(lines)
    api = re.search(r"API on (http://127\.0\.0\.1:\d+)", out).group(1)
    assert f"status page: {api}/ui" in out
    redis_port = re.search(r"redis:\s+redis://127\.0\.0\.1:(\d+)/0\s+\(redis-cli -p (\d+) ", out)
    assert redis_port and redis_port.group(1) == redis_port.group(2), out
    assert "/scheduler/select" in out and "/pools/demo_pool/Common/status" in out  # where to look
    tables = re.findall(r"decisions: (\d+) \((\d+) in this window\)", out)
    assert len(tables) >= 3, out
    rows = re.findall(r"^127\.0\.0\.1:\d+\s+(vllm fast|vllm slow|vllm dp=2|sglang)\s+([\d.]+|-)\s", out, re.M)
    assert {label for label, _ in rows} == {"vllm fast", "vllm slow", "vllm dp=2", "sglang"}
    assert any(score != "-" for _, score in rows), out  # members were scored
    total = int(re.search(r"demo traffic stopped: (\d+) decisions", out).group(1))
    assert total > 0 and total >= int(tables[-1][0])
    assert out.count("config reload ACCEPTED") == 1 and out.count("config reload REJECTED") == 1  # once per reload
    assert list(tmp_path.glob("llmsched-demo-*")) == []  # cleaned up after itself


def test_the_screen_shows_the_pollers_reload_lines_once_and_ignores_the_rest(tmp_path: Path) -> None:
    log = tmp_path / "up.log"
    head = "2026-01-01 00:00:00.000 | {level:<8} | {proc} | llmsched.shared.reload:poll:140 - "
    lines = [
        "llmsched up: API on http://127.0.0.1:8080 (POST /scheduler/select); Redis private redis://127.0.0.1:6390/0; "
        "config /tmp/c.yaml; Ctrl-C stops",
        head.format(level="ERROR", proc="scorer") + "config reload rejected: /tmp/c.yaml has 1 problem(s); kept",
        head.format(level="ERROR", proc="poller") + "config reload rejected: /tmp/c.yaml has 1 problem(s); kept",
        head.format(level="ERROR", proc="poller") + "config reload rejected: modes[0].name: unknown mode 's9'",
        head.format(level="INFO", proc="poller") + "config reloaded from /tmp/c.yaml: changed modes",
        head.format(level="INFO", proc="poller") + "started",
    ]
    log.write_text("\n".join(lines) + "\npartial line without a line feed")
    up_log = UpLog(log)
    assert up_log.redis_url(timeout=1) == "redis://127.0.0.1:6390/0"
    assert up_log.reloads() == [
        "config reload REJECTED (1 problem(s)); the configuration in force is kept:",
        "    modes[0].name: unknown mode 's9'",
        "config reload ACCEPTED: changed modes",
    ]
    assert up_log.reloads() == []
    assert reload_event("started") is None
