"""gunicorn settings for the llmsched API: `gunicorn -c python:api.gunicorn_conf api.wsgi:app`.

Shipped inside the package so an installed llmsched finds them; deploy/gunicorn.conf.py re-exports them for
`gunicorn -c deploy/gunicorn.conf.py` from a checkout.

Everything comes from the environment so one file serves `llmsched api`, compose and Kubernetes:
LLMSCHED_API_BIND (host:port), LLMSCHED_API_WORKERS, LLMSCHED_API_THREADS, LLMSCHED_ACCESS_LOG.
"""
import multiprocessing
import os

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
graceful_timeout = 5            # SIGTERM: finish in-flight requests, then exit within 5 s
max_requests = 0
accesslog = "-" if os.environ.get("LLMSCHED_ACCESS_LOG") else None
errorlog = "-"
loglevel = os.environ.get("LLMSCHED_LOG_LEVEL", "info").lower()
proc_name = "llmsched-api"
