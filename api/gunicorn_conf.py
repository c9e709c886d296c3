"""gunicorn settings for the llmsched API: `gunicorn -c python:llmsched.api.gunicorn_conf llmsched.api.wsgi:app`.

Shipped inside the package so an installed llmsched finds them; deploy/gunicorn.conf.py re-exports them for
`gunicorn -c deploy/gunicorn.conf.py` from a checkout.

Everything comes from the environment so one file serves `llmsched api`, compose and Kubernetes:
LLMSCHED_API_BIND (host:port, default 127.0.0.1:8080), LLMSCHED_API_WORKERS, LLMSCHED_API_WORKER_CLASS,
LLMSCHED_API_READ_TIMEOUT, LLMSCHED_API_MAX_CONNECTIONS_PER_SOURCE, LLMSCHED_API_ALLOWED_CLIENTS,
LLMSCHED_ACCESS_LOG.

Metrics: every worker counts its own decisions, so prometheus_client runs in multiprocess mode: values live in
files under PROMETHEUS_MULTIPROC_DIR and GET /metrics merges them. `llmsched api` creates a directory per run
(LLMSCHED_PROM_DIR_OWNED=1: removed at exit); a plain `gunicorn -c python:llmsched.api.gunicorn_conf` without the
variable gets one here. The hooks below clear a reused directory at start and retire dead workers' files.
"""

import glob
import logging
import multiprocessing
import os
import shutil

from gunicorn.glogging import Logger
from loguru import logger

from llmsched.api.metrics_dir import private_metrics_dir
from llmsched.shared.logging import setup_logging

bind = os.environ.get("LLMSCHED_API_BIND", "127.0.0.1:8080")
workers = int(os.environ.get("LLMSCHED_API_WORKERS") or max(2, multiprocessing.cpu_count()))
# gevent, with a read deadline and a cap per source (api/worker.py): a slow or idle client holds a greenlet, never
# a worker. A sync worker is held by any client that connects and sends nothing (docs/reliability.md).
# LLMSCHED_API_WORKER_CLASS=sync is for measurements only (make bench-api).
worker_class = os.environ.get("LLMSCHED_API_WORKER_CLASS") or "llmsched.api.worker.ApiWorker"
worker_connections = 1000
# BIG-IP opens one connection per request (HTTP/1.0, Connection: close): a deep accept backlog absorbs bursts.
backlog = 2048
# Must be > 0: gunicorn's gevent worker applies the read deadline (api/worker.py) only in its keep-alive loop.
keepalive = 1
timeout = 30
graceful_timeout = 5  # SIGTERM: finish in-flight requests, then exit within 5 s
max_requests = 0
accesslog = "-" if os.environ.get("LLMSCHED_ACCESS_LOG") else None
errorlog = "-"
loglevel = os.environ.get("LLMSCHED_LOG_LEVEL", "info").lower()
proc_name = "llmsched-api"

# gunicorn's own lines (master, worker boot, access log) go through loguru too, so LLMSCHED_LOG_FORMAT=json
# (global.log_format) gives one JSON object per line for everything the API process writes.
setup_logging(
    "api",
    os.environ.get("LLMSCHED_LOG_LEVEL", "INFO"),
    os.environ.get("LLMSCHED_LOG_FORMAT", "text"),
    intercept_stdlib=False,
)


class _ToLoguru(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        level: str | int
        try:
            level = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        where = {"name": record.name, "function": record.funcName, "line": record.lineno}
        logger.patch(lambda r: r.update(where)).opt(exception=record.exc_info).log(level, record.getMessage())  # type: ignore[typeddict-item]


class LoguruLogger(Logger):
    """gunicorn's logger with its handlers replaced by one that forwards to loguru."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
            log.addHandler(_ToLoguru())
            log.propagate = False


logger_class = LoguruLogger

# Set here, in the master, before any worker imports prometheus_client (it picks its storage at import time).
private_metrics_dir(os.environ)


def on_starting(server) -> None:
    """Before the first worker: check the limits and the allow-list (a bad value stops the start, naming it), warn
    once when the API is open to any source, and clear files left by an earlier run (its counters would resume)."""
    from llmsched.api.clients import ENV as ALLOWED_ENV
    from llmsched.api.clients import AllowList
    from llmsched.api.limits import limits_from_env

    limits_from_env(os.environ)
    if AllowList.from_env(os.environ).is_open:
        logger.warning(
            "global.api_allowed_clients is not set ({} empty): any client that reaches {} can ask for decisions "
            "and so steer herd control; list BIG-IP's self IPs there (deploy/f5/README.md)",
            ALLOWED_ENV,
            bind,
        )
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for path in glob.glob(os.path.join(directory, "*.db")):
        os.remove(path)


def child_exit(server, worker) -> None:
    """A worker exited: its counters stay in the totals, its live gauges are dropped."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    if os.environ.get("LLMSCHED_PROM_DIR_OWNED") == "1":
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
