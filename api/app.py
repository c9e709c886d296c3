"""Flask app factory: wires the Redis store, the blueprints and JSON error handling.

A replica needs only where Redis is: `create_app(store)` in tests, or the environment under gunicorn
(`llmsched.api.wsgi:app`): `REDIS_URL`, or `LLMSCHED_REDIS_SENTINELS` + `LLMSCHED_REDIS_MASTER`; `LLMSCHED_NAMESPACE`;
`LLMSCHED_REDIS_TIMEOUT`; `LLMSCHED_API_ALLOWED_CLIENTS` (llmsched.api.clients); `LLMSCHED_API_READ_TIMEOUT`.
Its only state is a copy of Redis's routing data and herd counts (llmsched.api.routing_state).
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from llmsched.api.clients import FORBIDDEN, AllowList
from llmsched.api.guard import check_admin_token, security_headers
from llmsched.api.health import health
from llmsched.api.limits import limits_from_env
from llmsched.api.metrics import TALLY, metrics
from llmsched.api.pools import pools
from llmsched.api.responses import json_response
from llmsched.api.routing_state import RoutingState
from llmsched.api.select import SelectEndpoint
from llmsched.api.ui import ui
from llmsched.api.validation import RequestError
from llmsched.api.whatif import whatif
from llmsched.shared.config_model import RedisConfig
from llmsched.shared.redis_conn import Breaker, client_for, target_from_env
from llmsched.shared.store import Store

MAX_BODY_BYTES = 1 << 20
CONNECT_TIMEOUT_S = 0.1
BACKGROUND_TIMEOUT_S = 0.25  # floor of the background reads' timeout: no decision waits for them


def store_from_env(env: Mapping[str, str] | None = None) -> Store:
    """This replica's store. Decisions never wait for it (they use the worker's in-memory copy); its timeout
    (`LLMSCHED_REDIS_TIMEOUT`, default `redis.decision_timeout`, at least 250 ms) bounds the background reloads and
    herd-count exchanges and the read of a pool this worker has never seen. The circuit breaker makes an
    unreachable Redis cost one timeout per cool-down, not one per read."""
    env = os.environ if env is None else env
    raw = env.get("LLMSCHED_REDIS_TIMEOUT") or ""
    try:
        timeout = float(raw) if raw else RedisConfig().decision_timeout
    except ValueError:
        raise ValueError(f"LLMSCHED_REDIS_TIMEOUT: {raw!r} is not a number of seconds") from None
    if not timeout > 0:
        raise ValueError(f"LLMSCHED_REDIS_TIMEOUT: must be > 0 seconds, got {raw!r}")
    # A new connection (a worker's first decision, a reconnect) may take longer than a read on a busy host; a
    # refused one still fails at once, and a failed connect opens the breaker like a failed read.
    timeout = max(timeout, BACKGROUND_TIMEOUT_S)
    client = client_for(target_from_env(env), socket_timeout=timeout, connect_timeout=max(timeout, CONNECT_TIMEOUT_S))
    return Store(client, env.get("LLMSCHED_NAMESPACE") or "llmsched", breaker=Breaker())


def create_app(
    store: Store | None = None,
    rng: random.Random | None = None,
    admin_token: str | None = None,
    allowed: AllowList | None = None,
) -> Flask:
    """`admin_token` (default: $LLMSCHED_ADMIN_TOKEN) guards every endpoint but decisions, health and metrics;
    `allowed` (default: $LLMSCHED_API_ALLOWED_CLIENTS) the sources that may ask for decisions and pool data."""
    app = Flask("llmsched")
    token = admin_token if admin_token is not None else os.environ.get("LLMSCHED_ADMIN_TOKEN", "")
    allowed = allowed if allowed is not None else AllowList.from_env(os.environ)
    if not allowed.is_open:
        app.before_request(lambda: _check_source(allowed))
    if token:
        app.before_request(lambda: check_admin_token(token))
    app.after_request(security_headers)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    if store is None:
        store = store_from_env()
    rng = rng if rng is not None else random.Random()
    state = RoutingState(store, on_tick=TALLY.flush_if_due).start()
    app.extensions["llmsched.store"] = store
    app.extensions["llmsched.rng"] = rng
    app.extensions["llmsched.routing"] = state
    app.wsgi_app = SelectEndpoint(  # type: ignore[method-assign]
        app.wsgi_app, state, rng, allowed, MAX_BODY_BYTES, limits_from_env(os.environ)[0]
    )
    app.register_blueprint(whatif)
    app.register_blueprint(pools)
    app.register_blueprint(health)
    app.register_blueprint(metrics)
    app.register_blueprint(ui)

    @app.errorhandler(RequestError)
    def request_error(exc: RequestError):
        return json_response({"detail": exc.detail}, exc.status)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return json_response({"detail": exc.name}, exc.code or 500)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        from loguru import logger

        logger.opt(exception=exc).error("unexpected error serving a request")
        return json_response({"detail": "Internal Server Error"}, 500)

    return app


def _check_source(allowed: AllowList):
    """A Flask before_request hook: 403 for a guarded path from a source not in the allow-list."""
    if allowed.guards(request.path) and not allowed.allows(request.remote_addr):
        return Response(FORBIDDEN, status=403, mimetype="application/json")
    return None
