"""A WSGI fast path for `POST /scheduler/select`, in front of Flask.

BIG-IP asks once per client request over a new connection, so this one route dominates the load. Answering it
without building Flask's request context, routing and response objects roughly halves the API's CPU per
decision (docs/benchmarks.md). It runs the same `answer_select` as the Flask route and produces the same bytes;
everything else (and any other method on this path) goes to Flask unchanged.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable

import orjson
from loguru import logger

from llmsched.api.decisions import Outcome, answer_select, record_outcome
from llmsched.api.dispatch import DispatchRecorder
from llmsched.api.metrics import record_rejected
from llmsched.api.responses import TEXT
from llmsched.api.validation import RequestError
from llmsched.shared.store import Store

SELECT_PATH = "/scheduler/select"
_REASONS = {
    200: "200 OK",
    400: "400 BAD REQUEST",
    413: "413 REQUEST ENTITY TOO LARGE",
    422: "422 UNPROCESSABLE ENTITY",
    500: "500 INTERNAL SERVER ERROR",
}


class SelectFastPath:
    def __init__(
        self, flask_wsgi: Callable, store: Store, rng: random.Random, max_body: int, recorder: DispatchRecorder
    ) -> None:
        self.flask_wsgi = flask_wsgi
        self.store = store
        self.rng = rng
        self.max_body = max_body
        self.recorder = recorder

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != SELECT_PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.flask_wsgi(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > self.max_body:
            # Unknown or excessive length: let Flask/werkzeug apply its limits and error pages.
            return self.flask_wsgi(environ, start_response)
        outcome = None
        started = time.perf_counter()
        try:
            outcome = answer_select(environ["wsgi.input"].read(length), self.store, self.rng)
            status, mime, body = 200, TEXT, outcome.answer.encode()
        except RequestError as exc:
            status, mime, body = exc.status, "application/json", orjson.dumps({"detail": exc.detail})
        except Exception as exc:
            logger.opt(exception=exc).error("unexpected error answering select")
            status, mime, body = 500, "application/json", b'{"detail":"Internal Server Error"}'
        start_response(
            _REASONS.get(status, f"{status} ERROR"), [("Content-Type", mime), ("Content-Length", str(len(body)))]
        )
        return _Body(body, outcome, self.recorder, status, time.perf_counter() - started)


class _Body:
    """The response body; the WSGI server calls close() after sending it, and only then are the decision and its
    dispatch counted."""

    def __init__(
        self, body: bytes, outcome: Outcome | None, recorder: DispatchRecorder, status: int, seconds: float
    ) -> None:
        self.body, self.outcome, self.recorder, self.status, self.seconds = body, outcome, recorder, status, seconds

    def __iter__(self):
        yield self.body

    def close(self) -> None:
        if self.outcome is not None:
            record_outcome(self.outcome, self.recorder, self.seconds)
        else:
            record_rejected(self.status)
