"""`bench routing --list` finds the shipped scenarios from any directory (test_packaging.py: the install)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmsched.bench.sim import scenario
from llmsched.cli.main import main


def test_a_bare_name_finds_the_shipped_scenario_whatever_the_working_directory_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bursty").mkdir()  # a directory with a scenario's name must not shadow it
    (tmp_path / "replicas").write_text("not yaml: [")
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "routing", "--list"]) == 0
    assert capsys.readouterr().out.split() == scenario.shipped()
    assert scenario.find("bursty") == scenario.SCENARIO_DIR / "bursty.yaml"
    assert scenario.load("replicas").name == "replicas"
    assert scenario.find("./replicas") == Path("./replicas")  # a path stays a path


def test_missing_shipped_scenarios_are_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(scenario, "SCENARIO_DIR", tmp_path / "scenarios")
    assert main(["bench", "routing", "--list"]) == 2
    err = capsys.readouterr().err
    assert "shipped scenarios are missing" in err and str(tmp_path / "scenarios") in err
