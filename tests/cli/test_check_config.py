"""Tests of `llmsched check-config` (llmsched.cli.check_config): exit codes, output streams, the file named in
file-level errors, suggestions for unknown keys, no secret leaks; and the command line around it (--version,
help for every option)."""

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
    assert check_config.check(str(EXAMPLE)) == 0
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
    assert check_config.check(str(f)) == 0
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
    assert check_config.check(str(f)) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert "pools[0].fallback.pool_fallback: must be a boolean (true or false, unquoted)" in lines
    assert "pools[0].metrics.metric_pwd_env: environment variable METRIC_PWD is not set" in lines
    assert any(line.startswith("pools[1].engine_type: xinference is not supported yet") for line in lines)
    assert any(line.startswith("redis.namespace: ") for line in lines)
    for secret in (*SECRETS.values(), "redis-pass-do-not-print", "abcdefdfdsfds"):
        assert secret not in err


def test_file_level_errors_name_the_file_not_a_placeholder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    absent = tmp_path / "absent.yaml"
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    broken = tmp_path / "broken.yaml"
    broken.write_text("pools: [\n")
    expected = {
        absent: f"{absent}: file not found\n",
        tmp_path: f"{tmp_path}: is a directory, not a file\n",
        empty: f"{empty}: the configuration is empty\n",
        broken: f"{broken}: YAML syntax error at line 2, column 1: ",
    }
    for path, start in expected.items():
        assert check_config.check(str(path)) == 1
        err = capsys.readouterr().err
        assert err.startswith(start), err
        assert "<file>" not in err


def test_an_unknown_key_names_the_nearest_known_key_of_its_section(
    secret_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["f5"]["pasword_env"] = data["f5"].pop("password_env")
    data["pools"][1]["engine_typ"] = "vllm"
    data["schedular"] = {}
    data["global"]["zzzz"] = 1
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(data))
    assert check_config.check(str(f)) == 1
    lines = capsys.readouterr().err.splitlines()
    assert "f5.pasword_env: unknown key (did you mean 'password_env'?)" in lines
    assert "pools[1].engine_typ: unknown key (did you mean 'engine_type'?)" in lines
    assert "schedular: unknown key (did you mean 'scheduler'?)" in lines
    assert "global.zzzz: unknown key" in lines  # nothing close: no guess


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    from llmsched import __version__
    from llmsched.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"llmsched {__version__}\n"


def test_every_option_of_every_command_has_help() -> None:
    import argparse

    from llmsched.cli.main import build_parser

    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    missing = {
        name: [a.option_strings or a.dest for a in parser._actions if not a.help]
        for name, parser in commands.choices.items()
    }
    missing = {
        name: [m for m in found if m != "bench"]  # `bench`'s own sub-commands, each with its help
        for name, found in missing.items()
    }
    assert {name: found for name, found in missing.items() if found} == {}


def test_missing_password_env(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("F5_PASSWORD", raising=False)
    monkeypatch.setenv("METRIC_PWD", "x")
    assert check_config.check(str(EXAMPLE)) == 1
    assert "f5.password_env: environment variable F5_PASSWORD is not set" in capsys.readouterr().err
