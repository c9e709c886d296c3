"""The Makefile a newcomer starts from: `make help` names every target, and system-deps installs what the
behavioural iRule tests need."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

MAKEFILE = Path(__file__).resolve().parents[1] / "Makefile"


def _targets() -> list[str]:
    return re.findall(r"^([a-z][a-z-]*):", MAKEFILE.read_text(encoding="utf-8"), flags=re.M)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_help_lists_every_target_with_a_description() -> None:
    out = subprocess.run(["make", "-s", "-f", str(MAKEFILE), "help"], capture_output=True, text=True, check=True)
    listed = {m.group(1): m.group(2) for m in re.finditer(r"^make (\S+)\s+(.+)$", out.stdout, flags=re.M)}
    assert len(_targets()) >= 12
    assert set(listed) == set(_targets()), out.stdout
    assert all(text.strip() for text in listed.values())


def test_every_target_is_phony() -> None:
    phony = re.search(r"^\.PHONY:(.*)$", MAKEFILE.read_text(encoding="utf-8"), flags=re.M)
    assert phony is not None and set(phony.group(1).split()) == set(_targets())


def test_system_deps_installs_tclsh_for_the_irule_tests() -> None:
    recipe = MAKEFILE.read_text(encoding="utf-8").split("system-deps:", 1)[1].split("\n\n", 1)[0]
    assert 'command -v tclsh >/dev/null || missing="$$missing tcl"' in recipe
