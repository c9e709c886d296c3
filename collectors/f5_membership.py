"""What the poller remembers of each pool between cycles, and the membership documents it writes.

The rule that matters: a pool's members are only ever replaced by a successful read of that pool. Any failure
(BIG-IP unreachable, slow, 5xx, credentials refused, pool missing) rewrites the last known membership unchanged,
with the same `fetched_at`, plus `error` and `error_at`, so readers see how old it is and why. A pool is never
emptied or dropped because the management plane is down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmsched.collectors.f5_errors import F5NotFound
from llmsched.collectors.f5_members import pool_full_path
from llmsched.shared.config_model import PoolConfig
from llmsched.shared.errors import F5Error


@dataclass
class PoolState:
    """The last membership this poller knows to be in Redis, and the pool's failure streak."""

    loaded: bool = False  # the previous doc was read from Redis (after a restart)
    members: list[dict[str, Any]] = field(default_factory=list)
    fetched_at: float | None = None  # time of the last successful read, None if never
    error: str | None = None  # the error last written, None while healthy
    logged_error: str | None = None  # the error this process last logged (logs once per change)
    failing_since: float | None = None
    failures: int = 0
    skipped_note: str | None = None  # last warning about unusable member items, logged once
    announced: bool = False  # this process has logged the pool's members once

    def adopt(self, doc: dict[str, Any] | None) -> None:
        """Start from what an earlier run left in Redis, so a restart during an outage keeps the members."""
        self.loaded = True
        if doc:
            self.members = list(doc.get("members") or [])
            self.fetched_at = doc.get("fetched_at")
            self.error = doc.get("error")


def success_doc(members: list[dict[str, Any]], now: float) -> dict[str, Any]:
    return {"fetched_at": now, "members": members, "error": None, "error_at": None}


def failure_doc(state: PoolState, error: str, now: float) -> dict[str, Any]:
    return {"fetched_at": state.fetched_at, "members": state.members, "error": error, "error_at": now}


def describe_error(exc: BaseException, pool: PoolConfig) -> str:
    """The one-line error stored in the membership doc (and shown by the status API); never a secret."""
    path = pool_full_path(pool.name, pool.partition)
    if isinstance(exc, F5NotFound) and exc.what.startswith("pool "):
        return f"pool {path} does not exist on BIG-IP"
    if isinstance(exc, F5Error):
        return str(exc)
    return f"pool {path}: unexpected {type(exc).__name__}: {exc}"


def _by_id(members: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(m.get("id")): m for m in members}


def membership_changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    """Human-readable differences ("+10.0.0.4:8000", "-10.0.0.1:8000", "10.0.0.2:8000 enabled->disabled");
    an empty list when members and every field of every member are the same (order does not matter)."""
    before, after = _by_id(old), _by_id(new)
    changes = [f"+{mid} ({after[mid].get('status')})" for mid in after if mid not in before]
    changes += [f"-{mid}" for mid in before if mid not in after]
    for mid in after.keys() & before.keys():
        a, b = before[mid], after[mid]
        if a == b:
            continue
        if a.get("status") != b.get("status"):
            changes.append(f"{mid} {a.get('status')}->{b.get('status')}")
        else:
            fields = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
            changes.append(f"{mid} changed {','.join(fields)}")
    return sorted(changes)


def status_counts(members: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for m in members:
        counts[str(m.get("status"))] = counts.get(str(m.get("status")), 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no members"
