"""What the poller and the scraper record in their Prometheus metrics (defined in shared/telemetry.py).

The collectors call one method per event; the bookkeeping that turns events into per-pool gauges (members per
status, the oldest successful scrape, stale members) lives here, so collectors/poller.py and scraper.py keep
only their recording calls. Gauges of pools that leave the config are removed, so no series lingers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from llmsched.collectors.f5_errors import (
    F5AuthError,
    F5HTTPError,
    F5NotFound,
    F5ProtocolError,
    F5TLSError,
    F5Unavailable,
    F5Unreachable,
)
from llmsched.shared import telemetry as t

# Most specific class first: F5TLSError is an F5Unreachable, F5AuthError an F5HTTPError.
_KINDS: tuple[tuple[type, str], ...] = (
    (F5AuthError, "auth"),
    (F5NotFound, "not_found"),
    (F5Unavailable, "unavailable"),
    (F5TLSError, "tls"),
    (F5Unreachable, "unreachable"),
    (F5ProtocolError, "protocol"),
    (F5HTTPError, "http"),
)


def error_kind(exc: BaseException) -> str:
    """The `kind` label of a failed pool read."""
    return next((kind for cls, kind in _KINDS if isinstance(exc, cls)), "internal")


def _remove(gauge, *labels: str) -> None:
    try:
        gauge.remove(*labels)
    except KeyError:
        pass


class PollTelemetry:
    """Poller metrics: reads and failures per pool, members per BIG-IP status."""

    def __init__(self) -> None:
        self._pools: set[str] = set()

    def _seen(self, pool_key: str) -> None:
        if pool_key not in self._pools:
            self._pools.add(pool_key)
            for kind in t.POLL_ERROR_KINDS:  # every kind exists from the start, so rate() sees the first one
                t.POLL_ERRORS.labels(pool_key, kind)

    def pool_read(self, pool_key: str, statuses: Iterable[str], now: float) -> None:
        """A successful read; `statuses` has each member's BIG-IP status."""
        self._seen(pool_key)
        t.POLLS.labels(pool_key).inc()
        counts = dict.fromkeys(t.MEMBER_STATUSES, 0)
        for status in statuses:
            counts[status] = counts.get(status, 0) + 1
        for status, n in counts.items():
            t.POOL_MEMBERS.labels(pool_key, status).set(n)
        t.POLL_LAST_SUCCESS.labels(pool_key).set(now)

    def pool_failed(self, pool_key: str, exc: BaseException) -> None:
        self._seen(pool_key)
        t.POLLS.labels(pool_key).inc()
        t.POLL_ERRORS.labels(pool_key, error_kind(exc)).inc()

    def cycle(self, seconds: float) -> None:
        t.POLL_DURATION.observe(seconds)

    def keep_only(self, pool_keys: Iterable[str]) -> None:
        """Drop the gauges of pools no longer configured."""
        keep = set(pool_keys)
        for pool_key in self._pools - keep:
            for status in t.MEMBER_STATUSES:
                _remove(t.POOL_MEMBERS, pool_key, status)
            _remove(t.POLL_LAST_SUCCESS, pool_key)
        self._pools &= keep


class ScrapeTelemetry:
    """Scraper metrics: every scrape's duration and result, and per pool how stale its members' data is."""

    def __init__(self) -> None:
        self._last_ok: dict[str, dict[str, float]] = {}  # pool -> member id -> time of its last ok scrape

    def target_scraped(self, pool_key: str, seconds: float, ok: bool) -> None:
        t.SCRAPES.labels(pool_key).inc()
        t.SCRAPE_DURATION.labels(pool_key).observe(seconds)
        if not ok:
            t.SCRAPE_ERRORS.labels(pool_key).inc()

    def pool_scraped(
        self, pool_key: str, docs: Mapping[str, Mapping[str, Any]], stale_after: float, now: float
    ) -> None:
        """After a pool's scrape: `docs` is member id -> the metrics document just written."""
        if pool_key not in self._last_ok:
            t.SCRAPE_ERRORS.labels(pool_key)  # the series exists (at 0) before the first failure
        previous = self._last_ok.get(pool_key, {})
        last_ok = {
            mid: (doc.get("scraped_at") or now) if doc.get("status") == "ok" else previous.get(mid, 0.0)
            for mid, doc in docs.items()
        }
        self._last_ok[pool_key] = last_ok
        t.SCRAPE_OLDEST_SUCCESS.labels(pool_key).set(min(last_ok.values(), default=now))
        t.SCRAPE_STALE_MEMBERS.labels(pool_key).set(sum(1 for at in last_ok.values() if at < now - stale_after))

    def cycle(self, seconds: float) -> None:
        t.SCRAPE_CYCLE_DURATION.observe(seconds)

    def keep_only(self, pool_keys: Iterable[str]) -> None:
        keep = set(pool_keys)
        for pool_key in set(self._last_ok) - keep:
            _remove(t.SCRAPE_OLDEST_SUCCESS, pool_key)
            _remove(t.SCRAPE_STALE_MEMBERS, pool_key)
            del self._last_ok[pool_key]
