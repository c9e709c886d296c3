"""Scoring jobs on the rq queue: how collectors ask the scorer to rescore a pool, without importing it.

A job is enqueued by the dotted name of its function (`SCORING_JOB`), so collectors depend only on this module.
Bursts coalesce: while a pool's job is still waiting in the queue, further requests for that pool add nothing
(the queued job will read the newest data anyway). The job clears the pending flag before it reads, so data
written while it runs gets a job of its own.

The pending flag holds the id of the job it stands for, and it coalesces only while that job is still waiting in
the queue list. A scorer killed after taking a job (rq moved it off the queue) but before clearing the flag leaves
a flag whose job nobody will run: the next request finds the job gone from the queue and enqueues a new one, so
such a death costs at most one scrape interval, never the flag's TTL. A job clears only its own flag
(compare-and-delete), so a job taken late never removes the flag of the job queued after it.
"""

from __future__ import annotations

import time
import uuid

import redis
from rq import Queue
from rq.serializers import JSONSerializer

from llmsched.shared.store import Store

SCORING_JOB = "llmsched.scorer.jobs.score_pool_job"
PENDING_TTL_S = 30  # a safety net only: a flag whose job left the queue is replaced at the next request
JOB_TIMEOUT_S = 30


# Job payloads in Redis are JSON, never pickles (docs/redis.md); the worker must use the same serializer.
SERIALIZER = JSONSerializer

# KEYS[1] the pool's pending flag, KEYS[2] the rq queue list; ARGV[1] the new job's id, ARGV[2] the TTL (s).
# 0: a job for the pool is still waiting in the queue (coalesce); 1: the flag now names ARGV[1] (enqueue it).
_CLAIM = """
local held = redis.call('GET', KEYS[1])
if held and redis.call('LPOS', KEYS[2], held) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""
# KEYS[1] the pending flag; ARGV[1] the job id that may clear it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def scoring_queue(store: Store) -> Queue:
    return Queue(store.keys.scoring_queue, connection=store.client, serializer=SERIALIZER)


def enqueue_scoring(store: Store, pool_key: str, reason: str, now: float | None = None) -> bool:
    """Ask for `pool_key` to be rescored because of `reason` (scrape, membership); False when one is queued."""
    now = time.time() if now is None else now
    queue = scoring_queue(store)
    job_id = uuid.uuid4().hex
    try:
        flag = store.keys.pool_scoring_pending(pool_key)
        if not store.client.eval(_CLAIM, 2, flag, queue.key, job_id, PENDING_TTL_S):
            return False
        queue.enqueue(
            SCORING_JOB,
            pool_key,
            now,
            reason,
            job_id=job_id,
            job_timeout=JOB_TIMEOUT_S,
            result_ttl=0,
            failure_ttl=3600,
            description=f"score {pool_key} ({reason})",
        )
        return True
    except redis.RedisError:
        return False


def clear_pending(store: Store, pool_key: str, job_id: str | None = None) -> None:
    """Drop the pool's pending flag: only if it names `job_id` (a job clearing its own), or whatever it holds."""
    flag = store.keys.pool_scoring_pending(pool_key)
    if job_id is None:
        store.client.delete(flag)
    else:
        store.client.eval(_RELEASE, 1, flag, job_id)
