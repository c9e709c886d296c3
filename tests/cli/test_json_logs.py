"""`global.log_format: json`: every line every process writes is one JSON object (for log shippers), gunicorn's own
lines and access log included."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from tests.api.live_api import live_api
from tests.conftest import free_port
from tests.helpers import make_store, seed

REPO = Path(__file__).resolve().parents[2]


def json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "no log output"
    records = []
    for line in lines:
        try:
            records.append(json.loads(line)["record"])
        except (ValueError, KeyError):
            raise AssertionError(f"not a JSON log line: {line!r}") from None
    return records


def test_the_api_logs_json_including_gunicorn_and_its_access_log(redis_url: str, tmp_path: Path) -> None:
    seed(make_store(redis_url), {"10.0.0.1:8000": {"waiting_queue": 1.0, "cache_usage": 0.1, "running_req": 1.0}})
    log = tmp_path / "api.log"
    env = {"LLMSCHED_LOG_FORMAT": "json", "LLMSCHED_LOG_LEVEL": "info", "LLMSCHED_ACCESS_LOG": "1"}
    with live_api(redis_url, workers=2, env=env, log=log) as (base, _proc):
        urllib.request.urlopen(f"{base}/livez", timeout=5).read()
        time.sleep(0.3)
    records = json_lines(log.read_text())
    assert {r["extra"]["process"] for r in records} == {"api"}
    assert any(r["name"] == "gunicorn.error" and "Booting worker" in r["message"] for r in records)
    assert any(r["name"] == "gunicorn.access" and "GET /livez" in r["message"] for r in records)


def test_the_collectors_and_the_scorer_log_json(redis_url: str, tmp_path: Path) -> None:
    config = tmp_path / "scheduler-config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"log_format": "json"},
                "f5": {"host": "127.0.0.1", "port": free_port(), "password_env": "TEST_F5_PW"},  # nothing listens there
                "redis": {"url": redis_url},
                "telemetry": {"host": "127.0.0.1", "poller_port": 0, "scraper_port": 0, "scorer_port": 0},
                "pools": [{"name": "p", "engine_type": "vllm"}],
            }
        )
    )
    env = {**{k: v for k, v in os.environ.items() if k != "REDIS_URL"}, "TEST_F5_PW": "pw", "PYTHONPATH": str(REPO)}
    for process in ("poller", "scraper", "scorer"):
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmsched.cli.main", process, "--config", str(config)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(2.0)  # start, publish, one cycle (the poller's fails: BIG-IP unreachable)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        records = json_lines(out + err)
        assert {r["extra"]["process"] for r in records} == {process}, process
        assert any(
            r["message"].startswith(f"{process} started") or "scoring worker" in r["message"] for r in records
        ), process
