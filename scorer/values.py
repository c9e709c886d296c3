"""Reading one metric out of a member's metrics dict, the same way for every scoring mode."""

from __future__ import annotations

import math
from collections.abc import Mapping


def finite_metric(member: Mapping[str, object], key: str) -> float | None:
    """member[key] as a float, or None when missing, not a number (booleans included), NaN or infinite."""
    raw = member.get(key)
    if raw is None or isinstance(raw, bool):
        return None
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
