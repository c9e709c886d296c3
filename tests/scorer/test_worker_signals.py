"""SIGTERM to the scoring worker while a job runs: rq's warm shutdown lets the job finish, then the process exits
0 within 5 s. (An idle worker's SIGTERM is tests/scorer/test_worker.py.)"""

from __future__ import annotations

import signal
import time

from rq import Queue
from rq.job import JobStatus

from llmsched.shared.scoring_queue import SERIALIZER

from tests.helpers import make_store
from tests.scorer.test_worker import wait_for, worker  # noqa: F401  (the fixture)

JOB_S = 1.5


def test_sigterm_during_a_job_lets_it_finish_then_exits_within_5_seconds(worker, redis_url: str) -> None:
    w = worker()
    store = make_store(redis_url)
    # A job that takes long enough to be caught in progress (scoring jobs take milliseconds).
    job = Queue(store.keys.scoring_queue, connection=store.client, serializer=SERIALIZER).enqueue(
        "time.sleep", JOB_S, result_ttl=60
    )
    wait_for("the job to start", lambda: job.get_status(refresh=True) == JobStatus.STARTED, timeout=10)
    w.proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    assert w.proc.wait(timeout=10) == 0, w.log.read_text()
    took = time.monotonic() - signalled
    print(f"\nscorer: SIGTERM during a {JOB_S} s job: the job finished, the worker exited after {took:.2f} s")
    assert job.get_status(refresh=True) == JobStatus.FINISHED
    assert took < 5.0
