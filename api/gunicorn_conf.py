"""gunicorn settings for the llmsched API: `gunicorn -c python:llmsched.api.gunicorn_conf llmsched.api.wsgi:app`.

Shipped inside the package so an installed llmsched finds them; deploy/gunicorn.conf.py re-exports them for
`gunicorn -c deploy/gunicorn.conf.py` from a checkout.

Everything comes from the environment so one file serves `llmsched api`, compose and Kubernetes:
LLMSCHED_API_BIND (host:port), LLMSCHED_API_WORKERS, LLMSCHED_API_THREADS, LLMSCHED_ACCESS_LOG.

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

bind = os.environ.get("LLMSCHED_API_BIND", "0.0.0.0:8080")
# Decisions are short and CPU-bound around one Redis round trip: plain sync workers, about one per core,
# beat threads or greenlets here (docs/benchmarks.md has the measurements).
workers = int(os.environ.get("LLMSCHED_API_WORKERS") or max(2, multiprocessing.cpu_count()))
threads = int(os.environ.get("LLMSCHED_API_THREADS") or 1)
worker_class = "gthread" if threads > 1 else "sync"
# BIG-IP opens one connection per request (HTTP/1.0, Connection: close): a deep accept backlog absorbs bursts.
backlog = 2048
keepalive = 5
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
        try:
            level = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.patch(lambda r: r.update(name=record.name, function=record.funcName, line=record.lineno)).opt(
            exception=record.exc_info
        ).log(level, record.getMessage())


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
    """Before the first worker: files left by an earlier run would make its counters resume, not restart."""
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
