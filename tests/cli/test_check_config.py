"""Tests of `llmsched check-config` (llmsched.cli.check_config.run): exit codes, output streams, no secret leaks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmsched.cli import check_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "scheduler-config.yaml"
SECRETS = {"F5_PASSWORD": "f5-pass-do-not-print", "METRIC_PWD": "metric-pass-do-not-print"}


@pytest.fixture()
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("REDIS_URL", raising=False)


def test_valid_file_prints_effective_config(secret_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert check_config.run(str(EXAMPLE)) == 0
    out, err = capsys.readouterr()
    assert err == ""
    doc = yaml.safe_load(out)  # the output is YAML (warnings are comments)
    assert doc["f5"]["password_env"] == "F5_PASSWORD"
    assert doc["pools"][0]["metrics"]["APIkey"] == "********"
    assert doc["scheduler"]["metrics_fetch_interval"] == 10000
    for secret in (*SECRETS.values(), "abcdefdfdsfds"):
        assert secret not in out


def test_warnings_are_printed(secret_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["modes"] = []
    data["pools"][0]["members"] = []
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(data))
    assert check_config.run(str(f)) == 0
    out = capsys.readouterr().out
    assert "# 2 warning(s):" in out
    assert "modes: no scoring mode: every decision answers none" in out
    assert "pools[0].members: ignored" in out


def test_invalid_file_prints_errors(
    secret_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("METRIC_PWD")
    data = yaml.safe_load(EXAMPLE.read_text())
    data["pools"][1]["engine_type"] = "xinference"
    data["pools"][0]["fallback"]["pool_fallback"] = "false"
    data["redis"] = {"url": "redis://:redis-pass-do-not-print@x/0", "namespace": "bad ns"}
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(data))
    assert check_config.run(str(f)) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert "pools[0].fallback.pool_fallback: must be a boolean (true or false, unquoted)" in lines
    assert "pools[0].metrics.metric_pwd_env: environment variable METRIC_PWD is not set" in lines
    assert any(line.startswith("pools[1].engine_type: xinference is not supported yet") for line in lines)
    assert any(line.startswith("redis.namespace: ") for line in lines)
    for secret in (*SECRETS.values(), "redis-pass-do-not-print", "abcdefdfdsfds"):
        assert secret not in err


def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert check_config.run(str(tmp_path / "absent.yaml")) == 1
    assert capsys.readouterr().err.startswith("<file>: file not found")


def test_missing_password_env(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("F5_PASSWORD", raising=False)
    monkeypatch.setenv("METRIC_PWD", "x")
    assert check_config.run(str(EXAMPLE)) == 1
    assert "f5.password_env: environment variable F5_PASSWORD is not set" in capsys.readouterr().err
