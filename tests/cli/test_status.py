"""`llmsched status`: the status table printed from Redis, as a real subprocess against a real Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from llmsched.shared import scrape_stats

from tests.conftest import free_port
from tests.helpers import make_store
from tests.status_data import BIGIP_ERROR, DISABLED, FAILING, HEALTHY, SCRAPE_ERROR, seed_status

REPO = Path(__file__).resolve().parents[2]


def status(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    inherited = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # only what the test says
    full_env = {**inherited, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "llmsched.cli.main", "status", *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def row(output: str, member: str) -> str:
    return next(line for line in output.splitlines() if line.strip().startswith(member))


def test_prints_each_member_with_state_load_score_share_and_why_it_cannot_be_picked(redis_url: str) -> None:
    seed_status(make_store(redis_url))
    done = status("--redis-url", redis_url)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "llm_pool / Common" in out and "other_pool / Common" in out
    assert "eligible 2/4" in out
    healthy = row(out, HEALTHY[0]).split()
    assert healthy[1:6] == ["enabled", "vllm", "2", "12", "31.0"] and healthy[-1] == "yes"
    assert float(healthy[7]) > 0  # share%
    assert row(out, DISABLED).split()[1] == "disabled"
    assert row(out, DISABLED).endswith("not enabled on BIG-IP")
    assert row(out, FAILING).endswith("no usable metrics (failed, stale or missing)")
    assert f"! BIG-IP: {BIGIP_ERROR}" in out
    assert f"! scrape {FAILING}: {SCRAPE_ERROR}" in out
    shares = [float(row(out, m).split()[7]) for m in HEALTHY]
    assert abs(sum(shares) - 100.0) < 0.2


def test_prints_each_live_scraper_with_its_cycle_lateness_throughput_and_skipped_ticks(redis_url: str) -> None:
    store = make_store(redis_url)
    seed_status(store)
    now = time.time()
    last = {"cycle_duration": 0.4213, "lateness": 0.0321, "skipped_ticks": 3, "members": 1000, "targets": 1000,
            "members_per_second": 2373.5, "scrapers": 2, "interval": 1.0}  # fmt: skip
    scrape_stats.save(store, "scraper", "host-a:11:aa", {**last, "at": now})
    scrape_stats.save(store, "scraper", "host-b:12:bb", {**last, "members": 7, "at": now})
    scrape_stats.save(store, "scraper", "gone:13:cc", {**last, "at": now - 60})  # stopped reporting: not live
    done = status("--redis-url", redis_url)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "scrapers: 2 live, 1007 members in their last cycles" in out
    line = row(out, "host-a:11:aa")
    assert "1000 members, cycle 0.421 s (started 0.032 s late) of 1.0 s, 2374 members/s, 3 skipped tick(s)" in line
    assert "gone:13:cc" not in out
    view = json.loads(status("--redis-url", redis_url, "--json").stdout)
    assert [s["holder"] for s in view["scrapers"]] == ["host-a:11:aa", "host-b:12:bb"]


def test_pool_filter_json_output_and_config_file(redis_url: str, tmp_path: Path) -> None:
    seed_status(make_store(redis_url))
    only = status("--redis-url", redis_url, "--pool", "other_pool")
    assert only.returncode == 0 and "other_pool / Common" in only.stdout and "llm_pool" not in only.stdout
    view = json.loads(status("--redis-url", redis_url, "--pool", "llm_pool:Common", "--json").stdout)
    assert [p["key"] for p in view["pools"]] == ["llm_pool:Common"]
    assert {m["id"]: m["eligible"] for m in view["pools"][0]["members"]} == {
        HEALTHY[0]: True,
        HEALTHY[1]: True,
        FAILING: False,
        DISABLED: False,
    }
    config = tmp_path / "scheduler-config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "f5": {"host": "127.0.0.1", "password_env": "TEST_F5_PW"},
                "redis": {"url": redis_url},
                "pools": [{"name": "llm_pool", "engine_type": "vllm"}],
            }
        )
    )
    from_config = status("--config", str(config), env={"TEST_F5_PW": "pw"})
    assert from_config.returncode == 0 and "llm_pool / Common" in from_config.stdout


def test_unknown_pool_and_unreachable_redis_are_clear_errors(redis_url: str) -> None:
    seed_status(make_store(redis_url))
    unknown = status("--redis-url", redis_url, "--pool", "nope")
    assert unknown.returncode == 2
    assert "no configured pool named 'nope' (configured: llm_pool:Common, other_pool:Common)" in unknown.stderr
    down = status("--redis-url", f"redis://127.0.0.1:{free_port()}/0")
    assert down.returncode == 1 and "cannot read Redis" in down.stderr
    nothing = status()
    assert nothing.returncode == 1 and "no Redis" in nothing.stderr


def test_watch_redraws_until_interrupted(redis_url: str) -> None:
    seed_status(make_store(redis_url))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmsched.cli.main", "status", "--redis-url", redis_url, "--watch", "0.2"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        lines: list[str] = []
        while sum("llmsched status, every 0.2 s" in line for line in lines) < 3:
            assert time.monotonic() < deadline, "".join(lines)
            lines.append(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
