"""Scoring jobs on the rq queue: how collectors ask the scorer to rescore a pool, without importing it.

A job is enqueued by the dotted name of its function (`SCORING_JOB`), so collectors depend only on this module.
Bursts coalesce: while a pool's job is still queued, further requests for that pool add nothing (the queued job
will read the newest data anyway). The job clears the pending flag before it reads, so data written while it runs
gets a job of its own.
"""

from __future__ import annotations

import time

import redis
from rq import Queue
from rq.serializers import JSONSerializer

from llmsched.shared.store import Store

SCORING_JOB = "llmsched.scorer.jobs.score_pool_job"
PENDING_TTL_S = 30  # a lost job (worker killed) blocks new ones for at most this long
JOB_TIMEOUT_S = 30


# Job payloads in Redis are JSON, never pickles (docs/redis.md); the worker must use the same serializer.
SERIALIZER = JSONSerializer


def scoring_queue(store: Store) -> Queue:
    return Queue(store.keys.scoring_queue, connection=store.client, serializer=SERIALIZER)


def enqueue_scoring(store: Store, pool_key: str, reason: str, now: float | None = None) -> bool:
    """Ask for `pool_key` to be rescored because of `reason` (scrape, membership); False when one is queued."""
    now = time.time() if now is None else now
    try:
        if not store.client.set(store.keys.pool_scoring_pending(pool_key), repr(now), nx=True, ex=PENDING_TTL_S):
            return False
        scoring_queue(store).enqueue(
            SCORING_JOB,
            pool_key,
            now,
            reason,
            job_timeout=JOB_TIMEOUT_S,
            result_ttl=0,
            failure_ttl=3600,
            description=f"score {pool_key} ({reason})",
        )
        return True
    except redis.RedisError:
        return False


def clear_pending(store: Store, pool_key: str) -> None:
    store.client.delete(store.keys.pool_scoring_pending(pool_key))
