"""`GET /metrics` of the API, and the per-decision recording the select paths call after answering (`Tally`).

gunicorn runs several worker processes; each counts its own decisions. With `PROMETHEUS_MULTIPROC_DIR` set
(`llmsched api` and api/gunicorn_conf.py make sure it is), prometheus_client keeps every worker's values in
files in that directory and this endpoint merges them, so any worker answers with the replica's totals.

Scores, expected shares, data ages, prefix-cache hit rates (the engine's and the prefix index's estimate) and
the config version are not counted here: they are computed from Redis at
scrape time (`RedisStatusCollector`), the same for every worker and replica, never stale in a dead worker's file.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections.abc import Iterator, Sequence

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from llmsched.api.responses import store
from llmsched.shared import telemetry as t
from llmsched.shared.errors import StoreError
from llmsched.shared.routing.reasons import Reason
from llmsched.shared.status import read_status
from llmsched.shared.store import Store

metrics = Blueprint("metrics", __name__)

_RESULTS = {"none": "none", "fallback": "fallback"}
FLUSH_S = 0.1  # the refresher adds the tally to prometheus_client this often


class Tally:
    """This worker's decision metrics since the last flush, in plain dicts: a decision costs a few dict updates,
    and prometheus_client is written once per label set and bucket per flush (by the refresher every FLUSH_S,
    and before each /metrics answer) instead of six times per decision (with PROMETHEUS_MULTIPROC_DIR, each of those
    writes is a lock, a getpid() and an mmap write)."""

    def __init__(self, every_s: float = FLUSH_S) -> None:
        self._lock = threading.Lock()
        self.every_s = every_s
        self._next_flush = 0.0
        self._reset()

    def _reset(self) -> None:
        self.decisions: dict[tuple[str, str, str], int] = {}
        self.selections: dict[tuple[str, str], int] = {}
        self.rejected: dict[int, int] = {}
        self.durations: list[float] = []
        self.candidates: list[int] = []

    def decision(
        self, pool: str | None, answer: str, reason: Reason, member_id: str | None, candidates: int, seconds: float
    ) -> None:
        """Count one answered select; `pool` is None when the pool is not configured (bounded label values)."""
        pool = pool or t.UNKNOWN_POOL
        key = (pool, _RESULTS.get(answer, "member"), reason.label)
        with self._lock:
            self.decisions[key] = self.decisions.get(key, 0) + 1
            self.durations.append(seconds)
            self.candidates.append(candidates)
            if member_id is not None:
                pick = (pool, member_id)
                self.selections[pick] = self.selections.get(pick, 0) + 1

    def rejection(self, status: int) -> None:
        with self._lock:
            self.rejected[status] = self.rejected.get(status, 0) + 1

    def flush_if_due(self) -> None:
        """flush() at most every `every_s` (the refresher calls this every tick)."""
        now = time.monotonic()
        if now >= self._next_flush:
            self._next_flush = now + self.every_s
            self.flush()

    def flush(self) -> None:
        """Add what was counted since the last flush to prometheus_client's metrics."""
        with self._lock:
            decisions, selections, rejected = self.decisions, self.selections, self.rejected
            durations, candidates = self.durations, self.candidates
            self._reset()
        for key, n in decisions.items():
            t.DECISIONS.labels(*key).inc(n)
        for pick, n in selections.items():
            t.SELECTIONS.labels(*pick).inc(n)
        for status, n in rejected.items():
            t.DECISIONS_REJECTED.labels(str(status)).inc(n)
        observe_all(t.DECISION_DURATION, durations)
        observe_all(t.DECISION_CANDIDATES, candidates)


def observe_all(histogram: Histogram, values: Sequence[float]) -> None:
    """histogram.observe(v) for every v, with one write per bucket touched: prometheus_client keeps one
    non-cumulative count per bucket and the sum (`_upper_bounds`, `_buckets`, `_sum`, the same since 0.4); any
    other layout falls back to observe()."""
    if not values:
        return
    bounds, buckets, total = (getattr(histogram, name, None) for name in ("_upper_bounds", "_buckets", "_sum"))
    if bounds is None or buckets is None or total is None:
        for value in values:
            histogram.observe(value)
        return
    counts: dict[int, int] = {}
    for value in values:
        i = bisect.bisect_left(bounds, value)  # the first bound >= value; +Inf is the last
        counts[i] = counts.get(i, 0) + 1
    total.inc(sum(values))
    for i, n in counts.items():
        buckets[i].inc(n)


TALLY = Tally()  # one per process: the select endpoint counts here, the refresher and /metrics flush it
record_decision = TALLY.decision
record_rejected = TALLY.rejection


class RedisStatusCollector(Collector):
    """Per-member and per-pool gauges computed from Redis at each scrape (shared/status.py, like the status page)."""

    def __init__(self, store_: Store) -> None:
        self.store = store_

    def collect(self) -> Iterator[Metric]:
        fams = {f.name: GaugeMetricFamily(f.name, f.help, labels=f.labels) for f in t.API_FROM_REDIS}
        fams[t.BUILD_INFO.name].add_metric([t.version()], 1)
        try:
            status = read_status(self.store, time.time())
        except StoreError:
            fams[t.REDIS_UP.name].add_metric([], 0)
            yield from fams.values()
            return
        fams[t.REDIS_UP.name].add_metric([], 1)
        meta = status["config"]
        if meta.get("version"):
            fams[t.CONFIG_INFO.name].add_metric([meta["version"], meta.get("publisher", "")], 1)
            fams[t.CONFIG_PUBLISHED.name].add_metric([], float(meta.get("published_at") or 0))
        for pool in status["pools"]:
            key = pool["key"]
            if pool["scores_age"] is not None:
                fams[t.POOL_SCORES_AGE.name].add_metric([key], pool["scores_age"])
            if pool["members_age"] is not None:
                fams[t.POOL_MEMBERS_AGE.name].add_metric([key], pool["members_age"])
            for m in pool["members"]:
                labels = [key, m["id"]]
                if m["score"] is not None:
                    fams[t.MEMBER_SCORE.name].add_metric(labels, m["score"])
                fams[t.MEMBER_ELIGIBLE.name].add_metric(labels, 1 if m["eligible"] else 0)
                fams[t.MEMBER_SHARE.name].add_metric(labels, m["share"])
                if m["data_age"] is not None:
                    fams[t.MEMBER_DATA_AGE.name].add_metric(labels, m["data_age"])
                if m.get("prefix_hit_rate") is not None:
                    fams[t.MEMBER_PREFIX_HIT_RATE.name].add_metric(labels, m["prefix_hit_rate"])
                if m.get("prefix_hit_rate_recent") is not None:
                    fams[t.MEMBER_PREFIX_HIT_RATE_RECENT.name].add_metric(labels, m["prefix_hit_rate_recent"])
                if m.get("prefix_estimate") is not None:
                    fams[t.MEMBER_PREFIX_ESTIMATE.name].add_metric(labels, m["prefix_estimate"])
        yield from fams.values()


class _ApiFamilies(Collector):
    """Every worker's decision metrics, merged from the multiprocess directory (API families only)."""

    def __init__(self, path: str) -> None:
        self.merged = MultiProcessCollector(None, path=path)
        self.names = {family.name for family in t.API.collect()}

    def collect(self) -> Iterator[Metric]:
        return (family for family in self.merged.collect() if family.name in self.names)


def exposition(store_: Store, multiproc_dir: str | None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ApiFamilies(multiproc_dir) if multiproc_dir else t.Merged((t.API,)))
    registry.register(RedisStatusCollector(store_))
    return generate_latest(registry)


@metrics.get("/metrics")
def prometheus_metrics():
    TALLY.flush()  # this worker's own decisions up to now (the others' are at most one tick behind)
    body = exposition(store(), os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None)
    return Response(body, mimetype=None, content_type=CONTENT_TYPE_LATEST)
