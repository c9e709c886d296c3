"""Every score the original produced for the reference metric sets (tests/scorer/data) is reproduced bit for bit.

The vectors in data/reference-scores.json were computed by the original's own ScoreCalculator; they live in the
repository so that every clone runs these tests. A missing or empty file is a failure, never a skip.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmsched.scorer import compute_scores
from llmsched.shared.config_model import ORIGINAL_MODE_NAMES

REFERENCE = Path(__file__).resolve().parent / "data" / "reference-scores.json"


def _entries() -> list[dict]:
    # Read at collection time so each vector is its own test; a missing file yields one failing placeholder.
    try:
        return json.loads(REFERENCE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []


ENTRIES = _entries()
# Without vectors the parametrised test below would be collected as "skipped"; one placeholder makes it fail instead.
CASES: list[dict | None] = list(ENTRIES) or [None]


def test_reference_file_is_present_and_complete() -> None:
    assert REFERENCE.is_file(), f"reference scores missing: {REFERENCE}"
    entries = json.loads(REFERENCE.read_text(encoding="utf-8"))
    assert len(entries) == 112, "7 metric sets (A-G) in each of the 16 modes"
    assert {e["mode"] for e in entries} == set(ORIGINAL_MODE_NAMES)


@pytest.mark.parametrize("entry", CASES, ids=[f"{e['mode']}-case-{e['case']}" if e else "missing" for e in CASES])
def test_scores_are_bit_identical_to_the_originals(entry: dict | None) -> None:
    assert entry is not None, f"no reference vectors could be read from {REFERENCE}"
    got = compute_scores(entry["mode"], entry["members"], entry["weights"])
    # Exact equality: the original's order of operations is reproduced, so not even the last bit may differ.
    assert got == entry["scores"], f"got {got!r}, the original gave {entry['scores']!r}"
