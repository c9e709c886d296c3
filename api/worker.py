"""The API's gunicorn worker: gevent's, so no client can hold a worker, plus a read deadline and a cap per source.

A sync worker serves one connection at a time: two clients that connect and send nothing stop every decision
(docs/reliability.md has the figures). gevent's worker serves up to `worker_connections` at once, each in a
greenlet, and a decision is a few hundred microseconds of CPU with no I/O (llmsched.api.routing_state), so
waiting clients cost memory, not decisions. Two limits keep that memory bounded:

* Read deadline (LLMSCHED_API_READ_TIMEOUT, default 1 s): a request's headers must arrive within it, or the
  connection is closed (also between keep-alive requests); llmsched.api.select applies the same deadline to the
  body and answers 408.
* Connections per source address and worker (LLMSCHED_API_MAX_CONNECTIONS_PER_SOURCE, default 256): one more is
  answered 503 and closed at once, so one client cannot take every connection slot of a worker.

`gunicorn -k llmsched.api.worker.ApiWorker` (api/gunicorn_conf.py sets it). This module imports nothing of the
app: gunicorn loads it in the master, and the worker patches the standard library before the app is imported.
"""

from __future__ import annotations

import os
import warnings

import gevent
from gevent.monkey import MonkeyPatchWarning
from gunicorn.workers.ggevent import GeventWorker

from llmsched.api.limits import limits_from_env

_BUSY_BODY = b'{"detail":"too many connections from this address"}'
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


class ApiWorker(GeventWorker):
    def patch(self) -> None:
        # gunicorn's master imported ssl before this worker could patch it; gevent warns, naming the modules that
        # hold direct references (redis.asyncio, which the API does not use). redis-py's sync client looks
        # `ssl` up at connect time, so it gets the patched module: the warning would only be noise on stderr
        # (and break one-JSON-object-per-line logs).
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=MonkeyPatchWarning)
            super().patch()

    def init_process(self) -> None:
        self.read_timeout, self.per_source = limits_from_env(os.environ)
        self.open_by_source: dict[str, int] = {}
        super().init_process()

    def timeout_ctx(self):
        """How long gunicorn waits for a request's headers (gevent's worker uses the keep-alive time)."""
        return gevent.Timeout(self.read_timeout, False)

    def handle_request(self, listener_name, req, sock, addr):
        result = super().handle_request(listener_name, req, sock, addr)
        # A keep-alive client whose next request is already buffered never blocks, so its greenlet would serve it
        # at once, again and again, and starve every other connection (a 200 ms p99 in make bench-api). Yield.
        if not req.should_close():
            gevent.sleep(0)
        return result

    def handle(self, listener, client, addr) -> None:
        source = addr[0] if isinstance(addr, tuple) else ""
        open_now = self.open_by_source.get(source, 0)
        if open_now >= self.per_source:
            try:
                client.sendall(BUSY)
            except OSError:
                pass
            client.close()
            return
        self.open_by_source[source] = open_now + 1
        try:
            super().handle(listener, client, addr)
        finally:
            left = self.open_by_source[source] - 1
            if left:
                self.open_by_source[source] = left
            else:
                del self.open_by_source[source]
