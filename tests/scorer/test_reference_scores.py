"""Every score the original produced for the reference metric sets (spec section 5.4) is reproduced to 1e-9."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmsched.scorer import compute_scores

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "spec" / "reference-scores.json"
TOLERANCE = 1e-9


def _entries() -> list[dict]:
    if not REFERENCE.is_file():
        return []
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


ENTRIES = _entries()


@pytest.mark.skipif(not ENTRIES, reason=f"reference scores not found at {REFERENCE}")
@pytest.mark.parametrize("entry", ENTRIES, ids=[f"{e['mode']}-case-{e['case']}" for e in ENTRIES])
def test_scores_match_the_originals_reference_output(entry: dict) -> None:
    got = compute_scores(entry["mode"], entry["members"], entry["weights"])
    expected = entry["scores"]
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g is not None, f"member {i} was not scored"
        assert abs(g - e) <= TOLERANCE, f"member {i}: got {g!r}, the original gave {e!r}"


@pytest.mark.skipif(not ENTRIES, reason=f"reference scores not found at {REFERENCE}")
def test_reference_file_covers_every_mode() -> None:
    from llmsched.shared.config_model import ORIGINAL_MODE_NAMES

    assert {e["mode"] for e in ENTRIES} == set(ORIGINAL_MODE_NAMES)
