"""`llmsched demo --duration S`: the whole stack with emulators and traffic, stopping by itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_traffic_through_the_scheduler_prints_decisions_and_stops_by_itself(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(PYTHONPATH=str(REPO), TMPDIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "llmsched.cli.main", "demo", "--duration", "8", "--clients", "8"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "/scheduler/select" in out and "/pools/demo_pool/Common/status" in out  # where to look
    tables = re.findall(r"decisions: (\d+) \((\d+) in this window\)", out)
    assert len(tables) >= 3, out
    rows = re.findall(r"^127\.0\.0\.1:\d+\s+(vllm fast|vllm slow|vllm dp=2|sglang)\s+([\d.]+|-)\s", out, re.M)
    assert {label for label, _ in rows} == {"vllm fast", "vllm slow", "vllm dp=2", "sglang"}
    assert any(score != "-" for _, score in rows), out  # members were scored
    total = int(re.search(r"demo traffic stopped: (\d+) decisions", out).group(1))
    assert total > 0 and total >= int(tables[-1][0])
    assert list(tmp_path.glob("llmsched-demo-*")) == []  # cleaned up after itself
