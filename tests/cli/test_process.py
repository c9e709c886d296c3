"""The start-up shared by the long-running commands (cli/process.py) and what `llmsched api --config` hands to
gunicorn: where Redis is (flag, REDIS_URL, url, sentinels) and the decision timeout."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from llmsched.cli.api import api_environment
from llmsched.cli.process import load, start
from llmsched.shared.config import load_config

BASE = {"f5": {"host": "127.0.0.1", "password_env": "TEST_F5_PW"}, "pools": [{"name": "p", "engine_type": "vllm"}]}


def write(tmp_path: Path, redis: dict | None = None, **extra: object) -> str:
    path = tmp_path / "scheduler-config.yaml"
    path.write_text(yaml.safe_dump({**BASE, **({"redis": redis} if redis else {}), **extra}))
    return str(path)


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_F5_PW", "pw")
    monkeypatch.delenv("REDIS_URL", raising=False)
    # `start` sets up the process's logging; the test session keeps its own.
    monkeypatch.setattr("llmsched.cli.process.setup_logging", lambda *_args, **_kw: None)


def test_config_errors_are_printed_with_the_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write(tmp_path, scheduler={"ha_lease_ttl": 0.1})
    assert load(path) is None
    assert f"{path}: scheduler.ha_lease_ttl: must be >= 0.3" in capsys.readouterr().err


def test_a_process_without_any_redis_says_how_to_set_one(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write(tmp_path)
    assert start(argparse.Namespace(config=path, redis_url=None), "poller") is None
    assert (
        f"{path}: redis.url: not set (set redis.url, $REDIS_URL or --redis-url, or redis.sentinels and "
        "redis.master_name)" in capsys.readouterr().err
    )


def test_the_flag_beats_the_environment_which_beats_the_sentinels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, {"sentinels": ["10.0.0.1:26379", "10.0.0.2:26379"], "master_name": "mymaster"})
    sentinel = start(argparse.Namespace(config=path, redis_url=None), "poller")
    assert sentinel.redis.url is None and sentinel.redis.master_name == "mymaster"
    assert sentinel.redis.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26379))
    monkeypatch.setenv("REDIS_URL", "redis://env:6379/0")
    assert start(argparse.Namespace(config=path, redis_url=None), "poller").redis.url == "redis://env:6379/0"
    assert (
        start(argparse.Namespace(config=path, redis_url="redis://flag:1/0"), "poller").redis.url == "redis://flag:1/0"
    )


def test_llmsched_api_gives_gunicorn_the_sentinels_and_the_decision_timeout(tmp_path: Path) -> None:
    path = write(
        tmp_path, {"sentinels": ["10.0.0.1:26379", "[::1]:26380"], "master_name": "mymaster", "decision_timeout": 0.015}
    )
    args = argparse.Namespace(config=path, redis_url=None, bind=None, workers=None)
    env = api_environment(args, {}, load_config(path))
    assert env["LLMSCHED_REDIS_SENTINELS"] == "10.0.0.1:26379,[::1]:26380"
    assert env["LLMSCHED_REDIS_MASTER"] == "mymaster" and env["LLMSCHED_REDIS_TIMEOUT"] == "0.015"
    assert "REDIS_URL" not in env
    assert api_environment(args, {"REDIS_URL": "redis://env:1/0"}, load_config(path))["REDIS_URL"] == "redis://env:1/0"
    defaults = api_environment(args, {}, load_config(write(tmp_path, {"url": "redis://r:1/0"})))
    assert defaults["REDIS_URL"] == "redis://r:1/0" and defaults["LLMSCHED_REDIS_TIMEOUT"] == "0.01"


def test_llmsched_api_hands_the_admin_token_to_gunicorn_from_the_named_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADMIN_TOKEN_FOR_TEST", "tok-123")
    path = write(tmp_path, {"url": "redis://r:1/0"}, **{"global": {"admin_token_env": "ADMIN_TOKEN_FOR_TEST"}})
    args = argparse.Namespace(config=path, redis_url=None, bind=None, workers=None)
    assert api_environment(args, {}, load_config(path))["LLMSCHED_ADMIN_TOKEN"] == "tok-123"
    assert "LLMSCHED_ADMIN_TOKEN" not in api_environment(
        args, {}, load_config(write(tmp_path, {"url": "redis://r:1/0"}))
    )
