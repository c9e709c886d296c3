"""The data-plane endpoint `POST /scheduler/select`: a WSGI layer in front of Flask.

BIG-IP asks once per client request over a new connection, so this one route dominates the load. It is answered
here, without Flask's request context, routing and response objects, from the worker's in-memory routing data
(llmsched.api.routing_state): no Redis round trip on the way. The pure decision is llmsched.shared.routing.

In order: the source must be allowed (llmsched.api.clients, 403); the method must be POST (405 with `Allow`);
the body is read within the read timeout (408), by Content-Length (a shorter body is 400) or chunked, up to 1 MiB
(413); a content type other than JSON is 422 as in the original (FastAPI validates the raw bytes then); then the
decision, answered `member`, `none` or `fallback` in plain text. A request that carries prompt fingerprints
(`prefix`) is matched against the worker's in-memory mirror of the shared prefix index
(llmsched.shared.prefix_index), also without a round trip. The decision is counted (metrics, herd control)
and its fingerprints recorded after the answer is sent, so neither delays BIG-IP. Every other path goes to
Flask unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.message import Message

import orjson
from loguru import logger

from llmsched.api.clients import FORBIDDEN, AllowList
from llmsched.api.limits import READ_TIMEOUT_S
from llmsched.api.metrics import record_decision, record_rejected
from llmsched.api.routing_state import RoutingState
from llmsched.api.validation import RequestError, parse_schedule_request
from llmsched.shared.prefix_index import qualified
from llmsched.shared.routing.decide import NONE, decide
from llmsched.shared.routing.reasons import Reason

SELECT_PATH = "/scheduler/select"
TEXT = "text/plain; charset=utf-8"
_STATUS = {
    200: "200 OK",
    400: "400 BAD REQUEST",
    403: "403 FORBIDDEN",
    405: "405 METHOD NOT ALLOWED",
    408: "408 REQUEST TIMEOUT",
    413: "413 REQUEST ENTITY TOO LARGE",
    422: "422 UNPROCESSABLE ENTITY",
    500: "500 INTERNAL SERVER ERROR",
}


@dataclass(frozen=True)
class Outcome:
    answer: str
    reason: Reason
    pool_key: str = ""  # set when the pool is configured
    member_id: str | None = None  # set when a member was picked
    count_expire_s: int = 0  # > 0 when herd control wants the pick counted (the counts' expiry)
    candidates: int = 0  # members BIG-IP offered (metrics)
    prefix: tuple[str, ...] = ()  # index entries to record for member_id after the answer
    matched: int = 0  # how many of them the index said member_id held


def answer_select(raw_body: bytes, state: RoutingState, rng: random.Random) -> Outcome:
    """The answer to one select request; raises RequestError for a bad body (400/422)."""
    req = parse_schedule_request(raw_body)
    config, snapshot, counts = state.inputs(req.pool_key)
    if config is None and state.loaded_at is None:
        # Never loaded (Redis down since this worker started): not the same as a pool nobody configured.
        return Outcome(NONE, Reason.REDIS_UNAVAILABLE, candidates=len(req.members))
    entries: tuple[str, ...] = ()
    matched: dict[str, int] = {}
    if req.prefix and config is not None and snapshot is not None and not config.get("pool_fallback"):
        # From the worker's mirror of the index (members that are not in the pool any more are ignored by the
        # sticky pick, which looks up the eligible ones only).
        entries = tuple(qualified(req.prefix, req.model))
        matched = state.prefix.lookup(req.pool_key, None, entries)
    now = time.time()
    pool = state.eligible(req.pool_key, config, snapshot, req.members, now)
    decision = decide(config, snapshot, req.members, now, rng, counts, matched or None, pool)
    logger.debug("select {} -> {} ({})", req.pool_key, decision.answer, decision.reason)
    expire = 0
    if decision.member_id is not None and config is not None and config.get("herd_control"):
        expire = max(1, int(float(config.get("stale_after") or 60.0) + 0.999))
    return Outcome(
        decision.answer,
        decision.reason,
        req.pool_key if config is not None else "",
        decision.member_id,
        expire,
        len(req.members),
        entries if decision.member_id is not None else (),
        matched.get(decision.member_id or "", 0),
    )


class ReadTimedOut(Exception):
    """The client did not send its whole body within the read timeout."""


def _deadline(seconds: float):
    """A deadline for reading the body, enforced where sockets are cooperative (gunicorn's gevent worker, the
    default); a sync worker has no way to interrupt a blocking read and relies on gunicorn's own timeout."""
    timeout = _cooperative_timeout()
    return timeout(seconds, ReadTimedOut) if timeout is not None else contextlib.nullcontext()


@functools.cache
def _cooperative_timeout():
    """gevent's Timeout when this process's sockets are gevent's (decided once: the worker patches before the app
    is imported), else None."""
    try:
        from gevent import Timeout, monkey
    except ImportError:
        return None
    return Timeout if monkey.is_module_patched("socket") else None


def read_body(environ: dict, max_body: int, timeout_s: float) -> bytes:
    """The request body by Content-Length or chunked transfer coding; RequestError when it is not whole."""
    length_text = environ.get("CONTENT_LENGTH") or ""
    chunked = "chunked" in (environ.get("HTTP_TRANSFER_ENCODING") or "").lower()
    stream = environ["wsgi.input"]
    try:
        with _deadline(timeout_s):
            if length_text:
                if not (length_text.isascii() and length_text.isdigit()):
                    raise RequestError(400, f"Content-Length must be a number of bytes, got {length_text[:40]!r}")
                length = int(length_text)
                if length > max_body:
                    raise RequestError(413, f"request body over {max_body} bytes")
                data = stream.read(length) if length else b""
                if len(data) < length:
                    raise RequestError(400, f"request body ended after {len(data)} of {length} bytes (Content-Length)")
                return data
            if chunked:
                data = stream.read(max_body + 1)
                if len(data) > max_body:
                    raise RequestError(413, f"request body over {max_body} bytes")
                return data
            return b""
    except ReadTimedOut:
        raise RequestError(408, f"request body not received within {timeout_s:g} s") from None


def check_content_type(environ: dict) -> None:
    """JSON or no content type; anything else is 422 with the shape FastAPI gives when it validates raw bytes."""
    value = environ.get("CONTENT_TYPE")
    if not value or value == "application/json":  # what the iRule sends: no header parsing
        return
    message = Message()
    message["content-type"] = value
    subtype = message.get_content_subtype()
    if message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json")):
        return
    raise RequestError(
        422,
        [
            {
                "type": "model_attributes_type",
                "loc": ["body"],
                "msg": "Input should be a valid dictionary or object to extract fields from",
            }
        ],
    )


class SelectEndpoint:
    """WSGI: answers SELECT_PATH itself and passes every other path to `app` (Flask)."""

    def __init__(
        self,
        app: Callable,
        state: RoutingState,
        rng: random.Random,
        allowed: AllowList,
        max_body: int,
        read_timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        self.app = app
        self.state = state
        self.rng = rng
        self.allowed = allowed
        self.max_body = max_body
        self.read_timeout_s = read_timeout_s

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != SELECT_PATH:
            return self.app(environ, start_response)
        started = time.perf_counter()
        outcome = None
        headers = []
        try:
            if not self.allowed.allows(environ.get("REMOTE_ADDR")):
                status, mime, body = 403, "application/json", FORBIDDEN
            elif environ.get("REQUEST_METHOD") != "POST":
                status, mime, body = 405, "application/json", b'{"detail":"Method Not Allowed"}'
                headers.append(("Allow", "POST"))
            else:
                raw = read_body(environ, self.max_body, self.read_timeout_s)
                check_content_type(environ)
                outcome = answer_select(raw, self.state, self.rng)
                status, mime, body = 200, TEXT, outcome.answer.encode()
        except RequestError as exc:
            status, mime, body = exc.status, "application/json", orjson.dumps({"detail": exc.detail})
        except Exception as exc:
            logger.opt(exception=exc).error("unexpected error answering select")
            status, mime, body = 500, "application/json", b'{"detail":"Internal Server Error"}'
        headers += [("Content-Type", mime), ("Content-Length", str(len(body)))]
        start_response(_STATUS.get(status, f"{status} ERROR"), headers)
        return _Body(body, outcome, self.state, status, time.perf_counter() - started)


class _Body:
    """The response body; the WSGI server calls close() after sending it, and only then is the decision counted
    (metrics, herd control)."""

    def __init__(self, body: bytes, outcome: Outcome | None, state: RoutingState, status: int, seconds: float) -> None:
        self.body, self.outcome, self.state, self.status, self.seconds = body, outcome, state, status, seconds

    def __iter__(self):
        yield self.body

    def close(self) -> None:
        outcome = self.outcome
        if outcome is None:
            record_rejected(self.status)
            return
        o = outcome
        record_decision(o.pool_key or None, o.answer, o.reason, o.member_id, o.candidates, self.seconds)
        if outcome.member_id is not None and outcome.count_expire_s > 0:
            self.state.count(outcome.pool_key, outcome.member_id, outcome.count_expire_s)
        if outcome.member_id is not None and outcome.prefix:
            self.state.prefix.record(outcome.pool_key, outcome.member_id, outcome.prefix, outcome.matched)
