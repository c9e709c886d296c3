"""A regular install: one top-level name, `llmsched`, and commands that never import from the working directory."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[1]
# Folders an operator moving from the original may well have in the directory they run from.
DECOYS = ("api", "shared", "cli", "scorer", "collectors")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv holding a regular (non-editable) install; the dependencies come from the test's own venv."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    # A copy of the source: pip builds in the source tree, and a stale build/ there could ship removed modules.
    source = venv.parent / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    deps = next(p for p in map(Path, sys.path) if p.name == "site-packages" and (p / "flask").is_dir())
    (site / "deps.pth").write_text(f"{deps}\n")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    yield venv


@pytest.fixture()
def decoy_dir(tmp_path: Path) -> Path:
    """A working directory whose packages share the names of llmsched's folders and fail when imported."""
    for name in DECOYS:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('the decoy {name}/ was imported')\n")
    return tmp_path


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "REDIS_URL")}
    return {**env, **extra}


def test_a_regular_install_puts_only_llmsched_and_its_dist_info_into_site_packages(installed: Path) -> None:
    site = next((installed / "lib").glob("python3*/site-packages"))
    names = sorted(p.name for p in site.iterdir() if p.name not in ("deps.pth", "__pycache__"))
    assert names[0] == "llmsched" and len(names) == 2 and re.fullmatch(r"llmsched-[\d.]+\.dist-info", names[1]), names
    assert (site / "llmsched" / "api" / "static" / "ui.html").is_file()
    assert sorted(p.stem for p in (site / "llmsched" / "bench" / "scenarios").glob("*.yaml"))


def test_the_scoring_entry_point_imports_from_the_install_beside_decoy_packages(
    installed: Path, decoy_dir: Path
) -> None:
    done = subprocess.run(
        [
            str(installed / "bin" / "python"),
            "-c",
            "import llmsched; from llmsched.scorer import compute_scores; print(llmsched.__file__)",
        ],
        cwd=decoy_dir,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(installed)


def test_llmsched_api_serves_from_a_directory_holding_decoy_packages(
    installed: Path, decoy_dir: Path, redis_url: str
) -> None:
    port = free_port()
    api = subprocess.Popen(
        [
            str(installed / "bin" / "llmsched"),
            "api",
            "--redis-url",
            redis_url,
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
        ],
        cwd=decoy_dir,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline, answer = time.monotonic() + 30, None
        while answer is None and time.monotonic() < deadline and api.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=1) as resp:
                    answer = resp.status
            except OSError:
                time.sleep(0.2)
        assert answer == 200, api.stdout.read().decode() if api.poll() is not None and api.stdout else "no answer"
    finally:
        api.terminate()
        api.wait(timeout=15)


def test_llmsched_demo_runs_up_and_its_stack_from_a_directory_holding_decoy_packages(
    installed: Path, decoy_dir: Path
) -> None:
    done = subprocess.run(
        [str(installed / "bin" / "llmsched"), "demo", "--duration", "6", "--clients", "4"],
        cwd=decoy_dir,
        env=clean_env(TMPDIR=str(decoy_dir)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "decoy" not in done.stdout + done.stderr
    total = re.search(r"demo traffic stopped: (\d+) decisions", done.stdout)
    assert total and int(total.group(1)) > 0, done.stdout[-2000:]
