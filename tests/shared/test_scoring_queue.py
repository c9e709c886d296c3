"""Tests of shared/scoring_queue.py: the pending flag that coalesces scoring requests, against a real Redis and rq's own
dequeue (the move a scorer makes before it runs a job)."""

from __future__ import annotations

import signal

from rq import Queue, SimpleWorker

from llmsched.shared.scoring_queue import SERIALIZER, clear_pending, enqueue_scoring, scoring_queue
from llmsched.shared.store import Store

from tests.scorer.test_jobs import POOL, put_unscored_pool, store  # noqa: F401 — the store every job uses


def take_job_like_a_scorer(store: Store) -> str:
    """What a scorer does before it runs a job: rq's dequeue moves the job id off the queue (into rq's
    intermediate list). A scorer killed right after this never clears the pool's pending flag."""
    taken = Queue.lmove(store.client, scoring_queue(store).key, timeout=None)
    assert taken is not None
    _queue_key, job_id = taken
    return job_id.decode()


def run_queued_jobs(store: Store) -> None:
    worker = SimpleWorker([store.keys.scoring_queue], connection=store.client, serializer=SERIALIZER)
    try:
        assert worker.work(burst=True)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_requests_coalesce_while_the_pool_job_waits_in_the_queue(store: Store) -> None:
    assert enqueue_scoring(store, POOL, "scrape")
    assert not enqueue_scoring(store, POOL, "scrape")
    assert not enqueue_scoring(store, POOL, "periodic")
    assert scoring_queue(store).count == 1


def test_a_scorer_killed_between_taking_the_job_and_clearing_the_flag_does_not_block_the_next_rescore(
    store: Store,
) -> None:
    put_unscored_pool(store, {"10.0.0.1:8000": {"waiting_queue": 0.0, "cache_usage": 0.1}})
    assert enqueue_scoring(store, POOL, "scrape")
    lost = take_job_like_a_scorer(store)
    assert store.client.get(store.keys.pool_scoring_pending(POOL)).decode() == lost  # the dead scorer's flag
    assert enqueue_scoring(store, POOL, "scrape")  # the next scrape's request is not swallowed by it
    run_queued_jobs(store)
    assert [m["id"] for m in store.scores(POOL)["members"]] == ["10.0.0.1:8000"]
    assert not store.client.exists(store.keys.pool_scoring_pending(POOL))


def test_a_job_run_late_clears_only_its_own_flag_not_the_one_of_the_job_queued_after_it(store: Store) -> None:
    assert enqueue_scoring(store, POOL, "scrape")
    late = take_job_like_a_scorer(store)
    assert enqueue_scoring(store, POOL, "scrape")
    newer = store.client.get(store.keys.pool_scoring_pending(POOL)).decode()
    clear_pending(store, POOL, late)
    assert store.client.get(store.keys.pool_scoring_pending(POOL)).decode() == newer
    assert not enqueue_scoring(store, POOL, "scrape")  # the newer job still waits: requests coalesce with it
    clear_pending(store, POOL, newer)
    assert not store.client.exists(store.keys.pool_scoring_pending(POOL))
