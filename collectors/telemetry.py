"""What the poller and the scraper record in their Prometheus metrics (defined in shared/telemetry.py).

The collectors call one method per event; the bookkeeping that turns events into per-pool gauges (members per
status, the oldest successful scrape, stale members) lives here, so collectors/poller.py and scraper.py keep
only their recording calls. Gauges of pools that leave the config are removed, so no series lingers.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

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


class ScrapeTelemetry(Collector):
    """Scraper metrics: every scrape's duration and result, each cycle's duration, lateness, skipped ticks and
    throughput, and (computed whenever /metrics is read, so true at any moment) per pool how stale the data of
    the members this scraper owns is. Registered as an extra collector of the scraper's endpoint."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._last_ok: dict[str, dict[str, float]] = {}  # pool -> owned member id -> time of its last ok scrape
        self._stale_after = 3.0
        self._children: dict[str, tuple[Any, Any, Any]] = {}  # pool -> (scrapes, errors, duration) children
        # pool -> (durations, [failures]) of the scrapes since the pool's last flush: recorded in bulk once per
        # pool and cycle, not with three locked prometheus_client updates per scrape
        self._pending: dict[str, tuple[list[float], list[int]]] = {}
        self.last_cycle: dict[str, float] = {}  # the last cycle's figures, for the stats in Redis

    def _pool(self, pool_key: str) -> tuple[Any, Any, Any]:
        children = self._children.get(pool_key)
        if children is None:  # labels() costs more than the scrape's bookkeeping: resolved once per pool
            children = (
                t.SCRAPES.labels(pool_key),
                t.SCRAPE_ERRORS.labels(pool_key),  # exists (at 0) before the first failure
                t.SCRAPE_DURATION.labels(pool_key),
            )
            self._children[pool_key] = children
        return children

    def target_scraped(self, pool_key: str, seconds: float, ok: bool) -> None:
        """One scrape; counted in the metrics at the pool's `pool_scraped` (or `flush`)."""
        pending = self._pending.get(pool_key)
        if pending is None:
            pending = self._pending[pool_key] = ([], [0])
        pending[0].append(seconds)
        if not ok:
            pending[1][0] += 1

    def flush(self, pool_key: str) -> None:
        """Add the pool's scrapes since the last flush to its counters and duration histogram."""
        pending = self._pending.pop(pool_key, None)
        if pending is None:
            return
        durations, (failures,) = pending
        scrapes, errors, duration = self._pool(pool_key)
        scrapes.inc(len(durations))
        if failures:
            errors.inc(failures)
        observe_all(duration, durations)

    def pool_scraped(
        self, pool_key: str, docs: Mapping[str, Mapping[str, Any]], stale_after: float, now: float
    ) -> None:
        """After a pool's scrape: `docs` is owned member id -> the metrics document just written."""
        self.flush(pool_key)
        self._pool(pool_key)
        self._stale_after = stale_after
        previous = self._last_ok.get(pool_key, {})
        self._last_ok[pool_key] = {
            mid: (doc.get("scraped_at") or now) if doc.get("status") == "ok" else previous.get(mid, 0.0)
            for mid, doc in docs.items()
        }

    def cycle(self, seconds: float, lateness: float, skipped: int, members: int, targets: int, scrapers: int) -> None:
        t.SCRAPE_CYCLE_DURATION.observe(seconds)
        t.SCRAPE_CYCLE_LATENESS.observe(lateness)
        if skipped:
            t.SCRAPE_SKIPPED_TICKS.inc(skipped)
        rate = members / seconds if seconds > 0 else 0.0
        t.SCRAPE_MEMBERS_PER_SECOND.set(rate)
        t.SCRAPE_OWNED_TARGETS.set(targets)
        t.SCRAPE_SHARD_SCRAPERS.set(scrapers)
        self.last_cycle = {
            "cycle_duration": round(seconds, 4),
            "lateness": round(lateness, 4),
            "skipped_ticks": self.last_cycle.get("skipped_ticks", 0) + skipped,
            "members": members,
            "targets": targets,
            "members_per_second": round(rate, 1),
            "scrapers": scrapers,
        }

    def stale(self, now: float | None = None) -> dict[str, tuple[int, float]]:
        """Per pool: (owned members whose last good scrape is older than stale_after, the oldest such time)."""
        now = self._clock() if now is None else now
        out = {}
        for pool_key, last_ok in self._last_ok.items():
            limit = now - self._stale_after
            out[pool_key] = (sum(1 for at in last_ok.values() if at < limit), min(last_ok.values(), default=now))
        return out

    def collect(self) -> Iterator[Metric]:
        stale = GaugeMetricFamily(t.SCRAPE_STALE_MEMBERS.name, t.SCRAPE_STALE_MEMBERS.help, labels=["pool"])
        oldest = GaugeMetricFamily(t.SCRAPE_OLDEST_SUCCESS.name, t.SCRAPE_OLDEST_SUCCESS.help, labels=["pool"])
        for pool_key, (count, at) in self.stale().items():
            stale.add_metric([pool_key], count)
            oldest.add_metric([pool_key], at)
        yield stale
        yield oldest

    def keep_only(self, pool_keys: Iterable[str]) -> None:
        keep = set(pool_keys)
        for pool_key in set(self._last_ok) - keep:
            del self._last_ok[pool_key]
        for pool_key in set(self._pending) - keep:
            del self._pending[pool_key]


def observe_all(histogram: Any, amounts: list[float]) -> None:
    """`histogram.observe(a)` for each amount, with one update per bucket touched rather than per amount.

    Each observation goes to the first bucket whose bound is >= it, as prometheus_client's `observe` does. This
    reaches into prometheus_client's histogram (`_upper_bounds`, `_buckets`, `_sum`); a version without them gets
    one `observe` per amount."""
    bounds, buckets, total = (getattr(histogram, a, None) for a in ("_upper_bounds", "_buckets", "_sum"))
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for amount in amounts:
            histogram.observe(amount)
        return
    counts: dict[int, int] = {}
    for amount in amounts:
        if amount == amount:  # NaN is in no bucket (every `<=` is false), as with observe()
            i = bisect.bisect_left(bounds, amount)
            counts[i] = counts.get(i, 0) + 1
    for i, n in counts.items():
        buckets[i].inc(n)
    total.inc(sum(amounts))
