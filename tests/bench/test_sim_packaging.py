"""The shipped scenarios travel with an installed llmsched, and `bench routing --list` works from any directory."""
from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.sim import scenario
from cli.main import main

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "scorer", "api", "collectors", "emulators", "cli", "bench")


def test_setup_cfg_ships_every_scenario_file_as_package_data() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    patterns = cfg["options.package_data"]["bench"].split()
    shipped = {p.name for pattern in patterns for p in (ROOT / "bench").glob(pattern)}
    assert shipped == {f"{name}.yaml" for name in scenario.shipped()} and len(shipped) >= 5


def test_an_installed_copy_lists_the_shipped_scenarios_from_another_directory(tmp_path: Path) -> None:
    source, lib, elsewhere = tmp_path / "src", tmp_path / "lib", tmp_path / "elsewhere"
    source.mkdir()
    for name in ("setup.cfg", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build",
                            "--build-base", str(tmp_path / "build"), "--build-lib", str(lib)],
                           cwd=source, capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    assert sorted(p.stem for p in (lib / "bench" / "scenarios").glob("*.yaml")) == scenario.shipped()
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(lib)}
    listed = subprocess.run([sys.executable, "-c", "import sys, bench, cli.main; print(bench.__file__); "
                             "sys.exit(cli.main.main(['bench', 'routing', '--list']))"],
                            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    where, *names = listed.stdout.split()
    assert Path(where).is_relative_to(lib)          # the installed copy answered, not the source tree
    assert names == scenario.shipped()


def test_a_bare_name_finds_the_shipped_scenario_whatever_the_working_directory_holds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bursty").mkdir()                   # a directory with a scenario's name must not shadow it
    (tmp_path / "replicas").write_text("not yaml: [")
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "routing", "--list"]) == 0
    assert capsys.readouterr().out.split() == scenario.shipped()
    assert scenario.find("bursty") == scenario.SCENARIO_DIR / "bursty.yaml"
    assert scenario.load("replicas").name == "replicas"
    assert scenario.find("./replicas") == Path("./replicas")      # a path stays a path


def test_missing_shipped_scenarios_are_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(scenario, "SCENARIO_DIR", tmp_path / "scenarios")
    assert main(["bench", "routing", "--list"]) == 2
    err = capsys.readouterr().err
    assert "shipped scenarios are missing" in err and str(tmp_path / "scenarios") in err
