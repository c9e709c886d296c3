"""The scoring worker process (`llmsched scorer`): an rq worker on the scoring queue, plus two helper threads.

* The rq worker runs `llmsched.scorer.jobs.score_pool_job` for each job the collectors enqueue. It is an rq
  `SimpleWorker`: jobs run in this process, not in a forked child, because a job is a few Redis round trips
  and a fork per job would dominate the scrape -> snapshot latency. Its Redis connection has no short socket
  timeout (rq sets one longer than its blocking dequeue), unlike the API's short Redis timeout.
* A rescore thread enqueues every configured pool once per metrics interval, so snapshots age even when no
  new data arrives: a member whose scrapes stopped turns stale (score null) without any scrape triggering it.
* A config watcher thread (with `--config`) applies valid changes of the file: the pools and the interval
  that the rescore thread uses, the log level; it then publishes the routing config and rescores every pool so
  a new mode, weights or thresholds show in the snapshots at once.

SIGTERM/SIGINT are rq's warm shutdown: the job in progress finishes (jobs take milliseconds), then the
process exits.

Redis outages never end the process (docs/ha.md): it waits for Redis at start, rq retries its dequeue every
second, and when rq's work loop gives up on a Redis error the worker starts it again after a short pause. A
watchdog thread (shared/watchdog.py) publishes the config again and rescores every pool as soon as Redis is back,
or back empty.
"""

from __future__ import annotations

import os
import signal
import socket
import threading

import redis
from loguru import logger
from rq import SimpleWorker
from rq.worker_registration import register

from llmsched.scorer.jobs import JOB_SOCKET_TIMEOUT_S, install_store
from llmsched.shared.config_model import Config
from llmsched.shared.errors import StoreError
from llmsched.shared.logging import setup_logging
from llmsched.shared.publish import publish_config
from llmsched.shared.redis_conn import RedisTarget, client_for, target_from_config
from llmsched.shared.reload import ConfigWatcher
from llmsched.shared.scoring_queue import SERIALIZER, enqueue_scoring
from llmsched.shared.store import Store
from llmsched.shared.telemetry import RESCORES_ENQUEUED
from llmsched.shared.watchdog import RedisWatchdog, rescore_now

PROCESS = "scorer"
MIN_RESCORE_INTERVAL_S = 0.2
REDIS_RETRY_S = 0.5  # pause before starting rq's work loop again after it gave up on Redis


class _Worker(SimpleWorker):
    """rq's SimpleWorker, plus: a stop signal that arrives while the process starts still ends it cleanly, and
    every stop signal is remembered in `stop_event` (so the process does not start rq's loop again)."""

    stop_event: threading.Event | None = None  # set by the process's early signal handler
    max_connection_wait_time = 1.0  # rq's dequeue retries Redis every second, not with backoff up to a minute

    def request_stop(self, signum, frame) -> None:
        if self.stop_event is not None:
            self.stop_event.set()
        super().request_stop(signum, frame)

    def _install_signal_handlers(self) -> None:
        super()._install_signal_handlers()
        if self.stop_event is not None and self.stop_event.is_set():
            logger.info("stop requested while starting")
            self._stop_requested = True  # rq's loop checks it before its first dequeue


class ScoringWorker:
    """One scoring worker process; `run()` blocks until SIGTERM/SIGINT and returns the exit code."""

    def __init__(
        self, config: Config, config_path: str | None = None, name: str | None = None, target: RedisTarget | None = None
    ) -> None:
        self.target = target or target_from_config(config.redis)
        if not self.target:
            raise ValueError(
                "no Redis to work with: set redis.url (or REDIS_URL in the environment), or "
                "redis.sentinels and redis.master_name (`llmsched up` sets REDIS_URL for the processes "
                "it starts)"
            )
        self.config = config
        self.config_path = config_path
        self.namespace = config.redis.namespace
        self.name = name or f"llmsched-scorer-{socket.gethostname()}-{os.getpid()}"
        self.store = Store(client_for(self.target, socket_timeout=JOB_SOCKET_TIMEOUT_S), self.namespace)
        self.stop = threading.Event()
        self.watchdog = RedisWatchdog(
            self.store, PROCESS, stale_after=lambda: self.config.scheduler.effective_stale_after
        )
        self.worker: _Worker | None = None

    # --- configuration ---------------------------------------------------------------------------------------
    def apply_config(self, new: Config) -> None:
        """Take a reloaded config: everything read per use (pools, interval) follows this reference."""
        if (new.global_.log_level, new.global_.log_format) != (
            self.config.global_.log_level,
            self.config.global_.log_format,
        ):
            setup_logging(PROCESS, new.global_.log_level, new.global_.log_format)
        self.config = new

    def publish(self, config: Config) -> None:
        publish_config(self.store, config, PROCESS)
        self.rescore_all("config")

    # --- periodic rescore ------------------------------------------------------------------------------------
    def rescore_interval(self) -> float:
        return max(MIN_RESCORE_INTERVAL_S, self.config.scheduler.metrics_fetch_interval / 1000.0)

    def rescore_all(self, reason: str) -> int:
        """Enqueue a rescore of every configured pool (coalesced with any queued one); how many were enqueued."""
        enqueued = sum(enqueue_scoring(self.store, pool.key, reason) for pool in self.config.pools)
        RESCORES_ENQUEUED.labels(reason).inc(enqueued)
        return enqueued

    def restore(self, reason: str) -> bool:
        """Redis is back, or back empty (the watchdog's call): publish the config, rescore every pool, and list
        the rq worker again among rq's workers if Redis lost that."""
        try:
            publish_config(self.store, self.config, PROCESS)
            rescore_now(self.store, [pool.key for pool in self.config.pools])
            if reason == "empty" and self.worker is not None:
                register(self.worker)
        except (StoreError, redis.RedisError) as exc:
            logger.warning("writing back after a Redis outage failed ({}); trying again", exc)
            return False
        return True

    def _rescore_loop(self) -> None:
        while not self.stop.wait(self.rescore_interval()):
            try:
                self.rescore_all("periodic")
            except Exception:  # never let the ageing of snapshots stop silently
                logger.exception("periodic rescore failed")

    # --- the process -----------------------------------------------------------------------------------------
    def rq_worker(self) -> _Worker:
        # No socket_timeout here: rq blocks on the queue for minutes and sets a timeout longer than that itself.
        connection = client_for(
            self.target, socket_timeout=None, connect_timeout=JOB_SOCKET_TIMEOUT_S, health_check_interval=30
        )
        return _Worker(
            [self.store.keys.scoring_queue],
            connection=connection,
            name=self.name,
            log_job_description=False,
            serializer=SERIALIZER,
        )

    def _stop_on_signal(self) -> None:
        # Outside rq's work loop (and until it installs its own handlers), a stop signal only sets the flag.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda _signum, _frame: self.stop.set())

    def _publish_at_start(self) -> str | None:
        """Publish the config, waiting for Redis as long as it takes; None when stopped first."""
        waiting = False
        while not self.stop.is_set():
            try:
                return publish_config(self.store, self.config, PROCESS)
            except StoreError as exc:
                if not waiting:
                    logger.error("cannot reach Redis at start ({}); trying again every {:g} s", exc, REDIS_RETRY_S)
                waiting = True
                self.stop.wait(REDIS_RETRY_S)
        return None

    def _work(self, rq_level: str) -> None:
        """rq's work loop until a stop signal; started again whenever it gives up because of Redis."""
        restarts, logged = 0, None
        while not self.stop.is_set():
            problem = "rq gave up on Redis"
            try:
                worker = self.worker = self.rq_worker()  # rq names its connection: Redis is needed already
                worker.stop_event = self.stop
                if restarts:
                    worker.connection.delete(worker.key)  # our own registration, left behind by the outage
                worker.work(logging_level=rq_level)
            except redis.RedisError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            finally:
                self._stop_on_signal()
            if self.stop.is_set():
                return
            restarts += 1
            if problem != logged:  # once per kind of failure, not every half second of an outage
                logger.warning(
                    "rq work loop ended without a stop signal ({}); starting it again every {:g} s until it runs",
                    problem,
                    REDIS_RETRY_S,
                )
                logged = problem
            self.stop.wait(REDIS_RETRY_S)

    def run(self) -> int:
        self._stop_on_signal()
        install_store(self.store)
        version = self._publish_at_start()
        if version is None:
            install_store(None)
            return 0
        threads = [
            threading.Thread(target=self._rescore_loop, name="rescore", daemon=True),
            threading.Thread(
                target=self.watchdog.run_until, args=(self.stop, self.restore), name="redis-watchdog", daemon=True
            ),
        ]
        if self.config_path:
            watcher = ConfigWatcher(self.config_path, self.config, self.apply_config, self.publish, process=PROCESS)
            threads.append(
                threading.Thread(target=watcher.run_until, args=(self.stop,), name="config-watcher", daemon=True)
            )
        for thread in threads:
            thread.start()
        self.rescore_all("start")
        logger.info(
            "scoring worker {} on queue {} (config version {}, {} pools, rescore every {:g} s)",
            self.name,
            self.store.keys.scoring_queue,
            version,
            len(self.config.pools),
            self.rescore_interval(),
        )
        rq_level = "DEBUG" if self.config.global_.log_level == "DEBUG" else "WARNING"
        try:
            self._work(rq_level)
        finally:
            self.stop.set()
            install_store(None)
        logger.info("scoring worker {} stopped", self.name)
        return 0
