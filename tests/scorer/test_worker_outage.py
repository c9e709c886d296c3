"""The scoring worker process (`llmsched scorer`) through Redis outages: it waits for Redis instead of exiting,
and after Redis comes back empty it publishes its config again and keeps scoring, in the same process (no
crash loop, no restart by `llmsched up`). Redis here is a redis-server the test owns, killed and started again."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from llmsched.shared.scoring_queue import enqueue_scoring

from tests.helpers import make_store
from tests.scorer.test_worker import POOL, TWO, config_doc, put_members, scores, wait_for
from tests.shared.redis_servers import RedisProc

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def server() -> Iterator[RedisProc]:
    proc = RedisProc()
    yield proc
    proc.close()


@pytest.fixture()
def scorer(tmp_path: Path, server: RedisProc) -> Iterator[subprocess.Popen]:
    config = tmp_path / "scheduler-config.yaml"
    config.write_text(yaml.safe_dump(config_doc(metrics_fetch_interval=500)))
    env = {**os.environ, "REDIS_URL": server.url, "F5_PW": "pw", "PYTHONPATH": str(REPO), "LLMSCHED_METRICS_PORT": "0"}
    with open(tmp_path / "scorer.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmsched.cli.main", "scorer", "--config", str(config)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    proc.log = tmp_path / "scorer.log"  # type: ignore[attr-defined]
    yield proc
    proc.kill()
    proc.wait()


def test_the_worker_waits_for_redis_at_start_instead_of_exiting(server: RedisProc, scorer) -> None:
    time.sleep(2.0)  # no Redis yet: a crash-looping worker would have exited by now
    assert scorer.poll() is None, scorer.log.read_text()
    server.start()
    store = make_store(server.url)
    wait_for("the config to be published", lambda: store.pool_keys() == [POOL], timeout=5)
    put_members(store, TWO)
    enqueue_scoring(store, POOL, "scrape")
    wait_for("a snapshot", lambda: scores(store), timeout=5)
    assert "cannot reach Redis at start" in scorer.log.read_text()


def test_the_worker_scores_again_after_redis_restarts_empty_in_the_same_process(server: RedisProc, scorer) -> None:
    server.start()
    store = make_store(server.url)
    put_members(store, TWO)
    wait_for("the first snapshot", lambda: (s := scores(store)) and len(s) == 2, timeout=10)
    server.kill()
    time.sleep(1.5)  # rq's loop and the rescore thread meet the outage
    server.start()  # empty: no persistence
    back = time.monotonic()
    wait_for("the config to be published again", lambda: store.pool_keys() == [POOL], timeout=5)
    republished = time.monotonic() - back
    put_members(store, TWO)  # what the collectors write back from their memory
    enqueue_scoring(store, POOL, "scrape")
    wait_for("a snapshot from the same worker", lambda: (s := scores(store)) and len(s) == 2, timeout=5)
    scored = time.monotonic() - back
    print(
        f"\nscorer after an empty Redis restart: config again after {republished:.2f} s, "
        f"a new snapshot {scored:.2f} s after Redis returned"
    )
    assert scorer.poll() is None, scorer.log.read_text()  # the same process: it never exited
