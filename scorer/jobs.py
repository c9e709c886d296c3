"""The scoring job the rq worker runs: clear the pool's pending flag, rescore the pool, record the latency.

`score_pool_job` is what `llmsched.shared.scoring_queue.enqueue_scoring` enqueues by name. Its latency is measured
from the moment the job was asked for (`enqueued_at`, set by the collector that wrote new data, e.g. at the end of a
scrape) to the moment the new snapshot is in Redis: the time a decision can still see older scores than the data
already in Redis. Running totals and a histogram per job reason, plus a capped list of recent samples, are kept in
Redis (keys `scoring_latency`, `scoring_latency_recent`) for reports and, later, for export.

The job needs a `Store`, but rq calls it with nothing but the job's arguments. So the worker process installs
its store once at start (`install_store`), in a module-level holder: it is part of that process's
configuration, set before the first job and never changed by a job. A worker that did not install one (a
plain `rq worker` pointed at the queue) gets a store built from the environment (`REDIS_URL`,
`LLMSCHED_NAMESPACE`).
"""

from __future__ import annotations

import math
import os
import time

import orjson
import redis
from loguru import logger
from rq import get_current_job

from llmsched.scorer.step import score_pool
from llmsched.shared.errors import StoreError
from llmsched.shared.scoring_queue import clear_pending
from llmsched.shared.store import Store, connect

# Upper bounds (s) of the latency histogram buckets; "+Inf" is added.
LATENCY_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RECENT_SAMPLES = 5000
# A job does a handful of small Redis calls; the API's short Redis timeout would make it fail spuriously under load.
JOB_SOCKET_TIMEOUT_S = 5.0

_store: Store | None = None  # this process's store; see the module docstring for why it is module-level


def install_store(store: Store | None) -> None:
    """Make `store` the one every job of this process uses (None: fall back to the environment)."""
    global _store
    _store = store


def job_store() -> Store:
    global _store
    if _store is None:
        url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
        _store = Store(
            connect(url, socket_timeout=JOB_SOCKET_TIMEOUT_S, connect_timeout=JOB_SOCKET_TIMEOUT_S),
            os.environ.get("LLMSCHED_NAMESPACE") or "llmsched",
        )
    return _store


def score_pool_job(pool_key: str, enqueued_at: float, reason: str) -> None:
    """Rescore `pool_key` now; `enqueued_at` (epoch s) is when the rescore was asked for."""
    store = job_store()
    # Cleared before reading: data written while this job runs then gets a job of its own. Only this job's own
    # flag: a newer one (set because this job sat taken but unrun) stands for a job still to come.
    job = get_current_job()
    clear_pending(store, pool_key, job.id if job is not None else None)
    snapshot = score_pool(store, pool_key)
    if snapshot is None:
        return
    latency = time.time() - float(enqueued_at)
    logger.debug(
        "scored {} ({}): {} members, {:.1f} ms after the request",
        pool_key,
        reason,
        len(snapshot["members"]),
        latency * 1000,
    )
    try:
        record_latency(store, pool_key, reason, latency)
    except StoreError as exc:  # the snapshot is written; losing one sample must not fail the job
        logger.warning("scoring latency of {} not recorded: {}", pool_key, exc)


def _bound_name(bound: float) -> str:
    return format(bound, "g")


def record_latency(
    store: Store, pool_key: str, reason: str, latency: float, now: float | None = None, keep: int = RECENT_SAMPLES
) -> None:
    """Add one sample to the totals, the histogram and the recent list (last `keep`), in one round trip."""
    latency = max(0.0, latency)  # clocks of the enqueuing host and this one may differ slightly
    keys = store.keys
    sample = orjson.dumps(
        {"pool": pool_key, "reason": reason, "latency": latency, "at": time.time() if now is None else now}
    )
    pipe = store.client.pipeline(transaction=False)
    pipe.eval(_RECORD, 1, keys.scoring_latency, reason, repr(latency), *map(_bound_name, LATENCY_BUCKETS))
    pipe.lpush(keys.scoring_latency_recent, sample)
    pipe.ltrim(keys.scoring_latency_recent, 0, keep - 1)
    try:
        pipe.execute()
    except redis.RedisError as exc:
        raise StoreError(f"redis: {type(exc).__name__}: {exc}") from exc


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an ascending list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_report(store: Store) -> dict[str, dict]:
    """Per reason: totals (count, mean, max) and p50/p90/p99 over the recent samples, in seconds."""
    keys = store.keys
    try:
        totals = store.client.hgetall(keys.scoring_latency)
        recent = store.client.lrange(keys.scoring_latency_recent, 0, -1)
    except redis.RedisError as exc:
        raise StoreError(f"redis: {type(exc).__name__}: {exc}") from exc
    report: dict[str, dict] = {}
    for field, value in totals.items():
        reason, _, what = field.decode().partition(":")
        entry = report.setdefault(reason, {"buckets": {}})
        if what.startswith("le:"):
            entry["buckets"][what[3:]] = int(value)
        else:
            entry[what] = float(value)
    samples: dict[str, list[float]] = {}
    for raw in recent:
        doc = orjson.loads(raw)
        samples.setdefault(doc["reason"], []).append(float(doc["latency"]))
    for reason, entry in report.items():
        values = sorted(samples.get(reason, []))
        entry["count"] = int(entry.get("count", 0))
        entry["mean"] = entry.get("sum", 0.0) / entry["count"] if entry["count"] else math.nan
        entry["recent"] = len(values)
        for q in (50, 90, 99):
            entry[f"p{q}"] = percentile(values, q)
    return report


# One hash, so Redis Cluster-safe: count, sum, max and the cumulative buckets the sample falls into.
# KEYS[1] the totals hash; ARGV[1] reason, ARGV[2] latency (s), ARGV[3..] bucket upper bounds.
_RECORD = """
local r, lat = ARGV[1], tonumber(ARGV[2])
redis.call('HINCRBY', KEYS[1], r .. ':count', 1)
redis.call('HINCRBYFLOAT', KEYS[1], r .. ':sum', ARGV[2])
local mx = tonumber(redis.call('HGET', KEYS[1], r .. ':max') or '-1')
if lat > mx then redis.call('HSET', KEYS[1], r .. ':max', ARGV[2]) end
for i = 3, #ARGV do
  if lat <= tonumber(ARGV[i]) then redis.call('HINCRBY', KEYS[1], r .. ':le:' .. ARGV[i], 1) end
end
redis.call('HINCRBY', KEYS[1], r .. ':le:+Inf', 1)
return 1
"""
