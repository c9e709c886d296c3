"""The decision reasons: every one has a bounded metric label, and docs/operations.md names exactly those labels."""

from __future__ import annotations

import re
from pathlib import Path

from llmsched.shared.routing.reasons import Reason

OPERATIONS = Path(__file__).resolve().parents[3] / "docs" / "operations.md"


def test_docs_list_exactly_the_reason_labels_of_the_decision_counter() -> None:
    row = next(line for line in OPERATIONS.read_text().splitlines() if line.startswith("| `llmsched_decisions_total`"))
    documented = set(re.findall(r"`([a-z_]+)`", row.split("|")[4]))
    documented -= {"member", "none", "fallback"}  # the `result` label's values, listed in the same cell
    assert documented == {reason.label for reason in Reason}
