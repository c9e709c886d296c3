"""Tests of the scoring worker process (`llmsched scorer`): a real rq worker process on a real Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from rq import Worker

from llmsched.cli.scorer import format_report
from llmsched.scorer.jobs import latency_report
from llmsched.shared.members import Member
from llmsched.shared.scoring_queue import enqueue_scoring
from llmsched.shared.store import Store

from tests.helpers import make_store

REPO = Path(__file__).resolve().parents[2]
POOL = "p1:Common"


def config_doc(**scheduler: Any) -> dict[str, Any]:
    return {
        "global": {"interval": 0.2, "log_level": "INFO"},
        "f5": {"host": "127.0.0.1", "password_env": "F5_PW"},
        "scheduler": {"pool_fetch_interval": 10, "metrics_fetch_interval": 5000, "stale_after": 60, **scheduler},
        "modes": [{"name": "s1"}],
        "pools": [{"name": "p1", "engine_type": "vllm"}],
    }


def wait_for(what: str, check: Callable[[], Any], timeout: float = 10.0, poll: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


class WorkerProcess:
    def __init__(self, tmp_path: Path, redis_url: str, doc: dict[str, Any]) -> None:
        self.config = tmp_path / "scheduler-config.yaml"
        self.config.write_text(yaml.safe_dump(doc))
        self.log = tmp_path / "scorer.log"
        self.redis_url = redis_url
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        env = {**os.environ, "REDIS_URL": self.redis_url, "F5_PW": "pw", "PYTHONPATH": str(REPO)}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "llmsched.cli.main", "scorer", "--config", str(self.config)],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=log,
            )
        client = make_store(self.redis_url).client
        wait_for(
            "the rq worker to register", lambda: Worker.count(connection=client) > 0 or self.proc.poll(), timeout=20
        )
        assert self.proc.poll() is None, self.log.read_text()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture()
def worker(tmp_path: Path, redis_url: str) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(doc: dict[str, Any] | None = None, run: bool = True) -> WorkerProcess:
        w = WorkerProcess(tmp_path, redis_url, doc or config_doc())
        started.append(w)
        return w.start() if run else w

    yield start
    for w in started:
        w.stop()


def put_members(store: Store, metrics: dict[str, dict], scraped_at: float | None = None) -> None:
    now = time.time()
    members = [Member(address=t.rpartition(":")[0], port=int(t.rpartition(":")[2]), name=t) for t in metrics]
    store.set_members(POOL, {"fetched_at": now, "members": [m.to_dict() for m in members], "error": None})
    store.set_metrics(
        POOL,
        {
            m.id: {"scraped_at": scraped_at or now, "status": "ok", "metrics": v}
            for m, v in zip(members, metrics.values())
        },
    )


def scores(store: Store) -> list[float | None] | None:
    snapshot = store.scores(POOL)
    return None if snapshot is None else [m["score"] for m in snapshot["members"]]


TWO = {
    "10.0.0.1:8000": {"waiting_queue": 0.0, "cache_usage": 0.1},
    "10.0.0.2:8000": {"waiting_queue": 8.0, "cache_usage": 0.8},
}


def test_worker_publishes_its_config_and_runs_enqueued_jobs_into_snapshots(worker, redis_url: str) -> None:
    worker()
    store = make_store(redis_url)
    assert store.pool_keys() == [POOL] and store.pool_config(POOL)["mode"] == "s1"
    put_members(store, TWO)
    wait_for("the job to be enqueued", lambda: enqueue_scoring(store, POOL, "scrape"))
    result = wait_for("the snapshot", lambda: (s := scores(store)) and len(s) == 2 and s)
    assert result[0] > result[1]
    wait_for("the latency record", lambda: latency_report(store).get("scrape", {}).get("count") == 1)


def test_bursts_coalesce_into_one_queued_job_which_the_worker_runs(worker, redis_url: str) -> None:
    store = make_store(redis_url)
    w = worker(run=False)
    put_members(store, TWO)
    # The pool must be configured before the job runs: publish what the worker would, then queue a burst.
    from llmsched.shared.config import load_config
    from llmsched.shared.publish import publish_config

    publish_config(store, load_config(w.config, {"F5_PW": "pw"}), "test")
    results = [enqueue_scoring(store, POOL, "scrape") for _ in range(5)]
    assert results == [True, False, False, False, False]
    assert store.client.llen(f"rq:queue:{store.keys.scoring_queue}") == 1
    w.start()
    wait_for("the snapshot", lambda: scores(store))
    wait_for("the pending flag to clear", lambda: not store.client.exists(store.keys.pool_scoring_pending(POOL)))
    assert enqueue_scoring(store, POOL, "scrape")  # a new request after the job ran is a new job


def test_sigterm_stops_the_worker_within_5_seconds(worker) -> None:
    w = worker()
    w.proc.send_signal(signal.SIGTERM)
    assert w.proc.wait(timeout=5) == 0, w.log.read_text()


def test_periodic_rescore_makes_a_member_whose_scrapes_stopped_stale(worker, redis_url: str) -> None:
    store = make_store(redis_url)
    worker(config_doc(metrics_fetch_interval=200, stale_after=1))
    put_members(store, TWO)
    enqueue_scoring(store, POOL, "scrape")
    wait_for("fresh scores", lambda: (s := scores(store)) and len(s) == 2 and None not in s)
    # No more scrapes, no more jobs from outside: the worker's own rescoring must age the snapshot.
    wait_for("stale scores", lambda: scores(store) == [None, None], timeout=10)
    assert latency_report(store)["periodic"]["count"] >= 1


def test_config_change_is_published_and_rescored_without_a_restart(worker, redis_url: str) -> None:
    store = make_store(redis_url)
    w = worker()
    put_members(store, TWO)
    enqueue_scoring(store, POOL, "scrape")
    wait_for("the first snapshot", lambda: (store.scores(POOL) or {}).get("mode") == "s1")
    doc = config_doc()
    doc["modes"] = [{"name": "s2", "w_a": 0.2, "w_b": 0.2, "w_g": 0.6}]
    doc["pools"][0]["fallback"] = {"pool_fallback": True}
    w.config.write_text(yaml.safe_dump(doc))
    wait_for("the new snapshot", lambda: (store.scores(POOL) or {}).get("mode") == "s2")
    assert store.pool_config(POOL)["pool_fallback"] is True
    assert w.proc.poll() is None


def test_invalid_config_change_keeps_the_worker_running_on_the_old_config(worker, redis_url: str) -> None:
    store = make_store(redis_url)
    w = worker()
    w.config.write_text("modes: [{name: nope}]\n")
    wait_for("the rejection in the log", lambda: "modes[0].name" in w.log.read_text())
    assert w.proc.poll() is None and store.pool_config(POOL)["mode"] == "s1"


def test_every_job_records_its_metrics_to_score_latency(worker, redis_url: str) -> None:
    """The latency record `llmsched scorer --report` reads (the figures themselves: make bench-scoring)."""
    store = make_store(redis_url)
    worker()
    put_members(store, {f"10.0.{i}.1:8000": {"waiting_queue": float(i), "cache_usage": i / 20} for i in range(16)})
    pending = store.keys.pool_scoring_pending(POOL)
    for _ in range(50):
        # One at a time, like a scrape finishing while the worker is idle: the latency is wake-up + scoring.
        wait_for("the previous job", lambda: not store.client.exists(pending), poll=0.0005)
        assert enqueue_scoring(store, POOL, "bench")
    wait_for("the last job", lambda: latency_report(store).get("bench", {}).get("count") == 50, timeout=30)
    report = latency_report(store)["bench"]
    assert report["recent"] == 50 and 0.0 < report["p50"] <= report["p99"] <= report["max"]
    assert "bench" in format_report({"bench": report})
