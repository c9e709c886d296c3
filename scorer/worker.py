"""The scoring worker process (`llmsched scorer`): an rq worker on the scoring queue, plus two helper threads.

* The rq worker runs `scorer.jobs.score_pool_job` for each job the collectors enqueue. It is an rq
  `SimpleWorker`: jobs run in this process, not in a forked child, because a job is a few Redis round trips
  and a fork per job would dominate the scrape -> snapshot latency. Its Redis connection has no short socket
  timeout (rq sets one longer than its blocking dequeue), unlike the 50 ms decision budget of the API.
* A rescore thread enqueues every configured pool once per metrics interval, so snapshots age even when no
  new data arrives: a member whose scrapes stopped turns stale (score null) without any scrape triggering it.
* A config watcher thread (with `--config`) applies valid changes of the file: the pools and the interval
  that the rescore thread uses, the log level; it then publishes the routing config and rescores every pool so
  a new mode, weights or thresholds show in the snapshots at once.

SIGTERM/SIGINT are rq's warm shutdown: the job in progress finishes (jobs take milliseconds), then the
process exits.
"""
from __future__ import annotations

import os
import signal
import socket
import threading

import redis
from loguru import logger
from rq import SimpleWorker

from scorer.jobs import JOB_SOCKET_TIMEOUT_S, install_store
from shared.config_model import Config
from shared.errors import StoreError
from shared.jobs import SERIALIZER, enqueue_scoring
from shared.logging import setup_logging
from shared.publish import publish_config
from shared.reload import ConfigWatcher
from shared.store import Store, connect
from shared.telemetry import RESCORES_ENQUEUED

PROCESS = "scorer"
MIN_RESCORE_INTERVAL_S = 0.2


class _Worker(SimpleWorker):
    """rq's SimpleWorker, plus: a stop signal that arrives while the process starts still ends it cleanly."""

    stop_event: threading.Event | None = None   # set by the process's early signal handler

    def _install_signal_handlers(self) -> None:
        super()._install_signal_handlers()
        if self.stop_event is not None and self.stop_event.is_set():
            logger.info("stop requested while starting")
            self._stop_requested = True     # rq's loop checks it before its first dequeue


class ScoringWorker:
    """One scoring worker process; `run()` blocks until SIGTERM/SIGINT and returns the exit code."""

    def __init__(self, config: Config, config_path: str | None = None, name: str | None = None) -> None:
        if not config.redis.url:
            raise ValueError("no Redis to work with: set redis.url in the config or REDIS_URL in the environment "
                             "(`llmsched up` sets REDIS_URL for the processes it starts)")
        self.config = config
        self.config_path = config_path
        self.url = str(config.redis.url)
        self.namespace = config.redis.namespace
        self.name = name or f"llmsched-scorer-{socket.gethostname()}-{os.getpid()}"
        self.store = Store(connect(self.url, socket_timeout=JOB_SOCKET_TIMEOUT_S,
                                   connect_timeout=JOB_SOCKET_TIMEOUT_S), self.namespace)
        self.stop = threading.Event()

    # --- configuration ---------------------------------------------------------------------------------------
    def apply_config(self, new: Config) -> None:
        """Take a reloaded config: everything read per use (pools, interval) follows this reference."""
        if (new.global_.log_level, new.global_.log_format) != (self.config.global_.log_level,
                                                               self.config.global_.log_format):
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

    def _rescore_loop(self) -> None:
        while not self.stop.wait(self.rescore_interval()):
            try:
                self.rescore_all("periodic")
            except Exception:       # never let the ageing of snapshots stop silently
                logger.exception("periodic rescore failed")

    # --- the process -----------------------------------------------------------------------------------------
    def rq_worker(self) -> _Worker:
        # No socket_timeout here: rq blocks on the queue for minutes and sets a timeout longer than that itself.
        connection = redis.Redis.from_url(self.url, socket_connect_timeout=JOB_SOCKET_TIMEOUT_S,
                                          health_check_interval=30)
        return _Worker([self.store.keys.scoring_queue], connection=connection, name=self.name,
                       log_job_description=False, serializer=SERIALIZER)

    def run(self) -> int:
        # Until rq installs its own handlers in work(), a stop signal only sets the flag rq will honour.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda _signum, _frame: self.stop.set())
        install_store(self.store)
        try:
            version = publish_config(self.store, self.config, PROCESS)
        except StoreError as exc:
            logger.error("cannot reach Redis at start, exiting: {}", exc)
            return 1
        worker = self.rq_worker()
        worker.stop_event = self.stop
        threads = [threading.Thread(target=self._rescore_loop, name="rescore", daemon=True)]
        if self.config_path:
            watcher = ConfigWatcher(self.config_path, self.config, self.apply_config, self.publish, process=PROCESS)
            threads.append(threading.Thread(target=watcher.run_until, args=(self.stop,), name="config-watcher",
                                            daemon=True))
        for thread in threads:
            thread.start()
        self.rescore_all("start")
        logger.info("scoring worker {} on queue {} (config version {}, {} pools, rescore every {:g} s)", self.name,
                    self.store.keys.scoring_queue, version, len(self.config.pools), self.rescore_interval())
        rq_level = "DEBUG" if self.config.global_.log_level == "DEBUG" else "WARNING"
        try:
            worker.work(logging_level=rq_level)
        finally:
            self.stop.set()
            install_store(None)
        logger.info("scoring worker {} stopped", self.name)
        return 0
