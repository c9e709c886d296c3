"""The scorer's scrape-time metrics, read from Redis: scoring queue depth, failed jobs, workers, scoring latency.

These are cluster-wide facts (one queue, latency totals that every scorer adds to in Redis), so they are read at
scrape time rather than counted in the process: every scorer instance shows the same values, and a restart
loses nothing. Names and help texts are defined in shared/telemetry.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from rq import Worker

from llmsched.shared import telemetry as t
from llmsched.shared.scoring_queue import scoring_queue
from llmsched.shared.store import Store


def latency_histograms(totals: dict[bytes, bytes]) -> HistogramMetricFamily:
    """The scorer's latency hash (`<reason>:count|sum|max|le:<bound>`, docs/redis.md) as one histogram family."""
    by_reason: dict[str, dict] = {}
    for raw_field, raw_value in totals.items():
        reason, _, what = raw_field.decode().partition(":")
        entry = by_reason.setdefault(reason, {"buckets": {}, "sum": 0.0})
        if what.startswith("le:"):
            entry["buckets"][what[3:]] = float(raw_value)
        elif what == "sum":
            entry["sum"] = float(raw_value)
    family = HistogramMetricFamily(t.SCORING_LATENCY.name, t.SCORING_LATENCY.help, labels=t.SCORING_LATENCY.labels)
    for reason, entry in sorted(by_reason.items()):
        bounds = sorted((b for b in entry["buckets"] if b != "+Inf"), key=float)
        buckets = [(b, entry["buckets"][b]) for b in bounds] + [("+Inf", entry["buckets"].get("+Inf", 0.0))]
        family.add_metric([reason], buckets, entry["sum"])
    return family


class ScoringCollector(Collector):
    """Reads the queue and the latency totals from Redis at every scrape of the scorer's /metrics."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _gauge(self, family: t.Family, value: float) -> GaugeMetricFamily:
        return GaugeMetricFamily(family.name, family.help, value=value)

    def collect(self) -> Iterator[Metric]:
        try:
            queue = scoring_queue(self.store)
            depth, failed = queue.count, queue.failed_job_registry.count
            workers = Worker.count(queue=queue)
            totals = self.store.client.hgetall(self.store.keys.scoring_latency)
        except redis.RedisError:
            yield self._gauge(t.REDIS_UP, 0)
            return
        yield self._gauge(t.REDIS_UP, 1)
        yield self._gauge(t.QUEUE_DEPTH, depth)
        yield self._gauge(t.FAILED_JOBS, failed)
        yield self._gauge(t.SCORING_WORKERS, workers)
        yield latency_histograms(totals)
