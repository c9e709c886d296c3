"""`GET /metrics` of the API, and the per-decision recording the select paths call after answering.

gunicorn runs several worker processes; each counts its own decisions. With `PROMETHEUS_MULTIPROC_DIR` set
(`llmsched api` and api/gunicorn_conf.py make sure it is), prometheus_client keeps every worker's values in
files in that directory and this endpoint merges them, so any worker answers with the replica's totals.

Scores, expected shares, data ages, prefix-cache hit rates (the engine's and the prefix index's estimate) and
the config version are not counted here: they are computed from Redis at
scrape time (`RedisStatusCollector`), the same for every worker and replica, never stale in a dead worker's file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
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

# labels() validates and locks on every call; the label sets are few, so their children are kept here.
_decisions: dict[tuple[str, str, str], Any] = {}
_selections: dict[tuple[str, str], Any] = {}


def record_decision(
    pool: str | None, answer: str, reason: Reason, member_id: str | None, candidates: int, seconds: float
) -> None:
    """Count one answered select; `pool` is None when the pool is not configured (bounded label values)."""
    pool = pool or t.UNKNOWN_POOL
    key = (pool, _RESULTS.get(answer, "member"), reason.label)
    child = _decisions.get(key)
    if child is None:
        child = _decisions[key] = t.DECISIONS.labels(*key)
    child.inc()
    t.DECISION_DURATION.observe(seconds)
    t.DECISION_CANDIDATES.observe(candidates)
    if member_id is not None:
        pick = (pool, member_id)
        child = _selections.get(pick)
        if child is None:
            child = _selections[pick] = t.SELECTIONS.labels(*pick)
        child.inc()


def record_rejected(status: int) -> None:
    t.DECISIONS_REJECTED.labels(str(status)).inc()


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
    body = exposition(store(), os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None)
    return Response(body, mimetype=None, content_type=CONTENT_TYPE_LATEST)
