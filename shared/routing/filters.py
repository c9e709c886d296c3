"""Filters: each takes the candidate members (snapshot member dicts) and returns those it lets through.

A member dict is one entry of a pool's score snapshot (docs/redis.md): `status`, `score`, `metrics`,
`scraped_at`, ... Filters never reorder, so the pick walks members in BIG-IP's pool order, as the original did.
"""

from __future__ import annotations

from collections.abc import Callable

Filter = Callable[[list[dict]], list[dict]]


def enabled_on_bigip(members: list[dict]) -> list[dict]:
    """BIG-IP must itself consider the member enabled and up (not disabled, forced offline or monitor-down)."""
    return [m for m in members if m.get("status") == "enabled"]


def scored(members: list[dict]) -> list[dict]:
    """A member without a usable score (no metrics, failed scrape, mode could not score it) is never healthy."""
    return [m for m in members if m.get("score") is not None]


def fresh(now: float, stale_after: float) -> Filter:
    """Metrics older than `stale_after` seconds say nothing about the member now."""
    oldest = now - stale_after

    def keep_fresh(members: list[dict]) -> list[dict]:
        return [m for m in members if (m.get("scraped_at") or 0.0) >= oldest]

    return keep_fresh


def under_thresholds(running_max: float | None, waiting_max: float | None) -> Filter:
    """The original's member thresholds: exclude when a raw metric is strictly above its limit."""

    def keep_under(members: list[dict]) -> list[dict]:
        if running_max is None and waiting_max is None:
            return members
        kept = []
        for m in members:
            metrics = m.get("metrics") or {}
            if running_max is not None and metrics.get("running_req", 0.0) > running_max:
                continue
            if waiting_max is not None and metrics.get("waiting_queue", 0.0) > waiting_max:
                continue
            kept.append(m)
        return kept

    return keep_under


def positive_score(members: list[dict]) -> list[dict]:
    """A score <= 0 is never picked (the original's rule, and s1_ratio can go negative)."""
    return [m for m in members if (m.get("score") or 0.0) > 0.0]
