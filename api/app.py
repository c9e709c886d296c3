"""Flask app factory: wires the Redis store, the blueprints and JSON error handling.

A replica needs only where Redis is: `create_app(store)` in tests, or the environment under gunicorn
(`llmsched.api.wsgi:app`): `REDIS_URL`, or `LLMSCHED_REDIS_SENTINELS` + `LLMSCHED_REDIS_MASTER`; `LLMSCHED_NAMESPACE`;
`LLMSCHED_REDIS_TIMEOUT`. It keeps no state of its own.
"""

from __future__ import annotations

import os
import random

from flask import Flask
from werkzeug.exceptions import HTTPException

from llmsched.api.decisions import decisions
from llmsched.api.dispatch import DispatchRecorder
from llmsched.api.fastpath import SelectFastPath
from llmsched.api.guard import check_admin_token, security_headers
from llmsched.api.health import health
from llmsched.api.metrics import metrics
from llmsched.api.pools import pools
from llmsched.api.responses import json_response
from llmsched.api.ui import ui
from llmsched.api.validation import RequestError
from llmsched.shared.config_model import RedisConfig
from llmsched.shared.redis_conn import Breaker, client_for, target_from_env
from llmsched.shared.store import Store

MAX_BODY_BYTES = 1 << 20
CONNECT_TIMEOUT_S = 0.1


def store_from_env(env: dict | None = None) -> Store:
    """This replica's store. Its Redis timeout (`LLMSCHED_REDIS_TIMEOUT`, default `redis.decision_timeout`, 10 ms)
    bounds how long a decision waits before answering `none`, far below BIG-IP's 500 ms sideband timeout; the
    circuit breaker then answers at once for a short cool-down, so an unreachable Redis costs one timeout per
    cool-down, not one per request."""
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
    client = client_for(target_from_env(env), socket_timeout=timeout, connect_timeout=max(timeout, CONNECT_TIMEOUT_S))
    return Store(client, env.get("LLMSCHED_NAMESPACE") or "llmsched", breaker=Breaker())


def create_app(store: Store | None = None, rng: random.Random | None = None, admin_token: str | None = None) -> Flask:
    """`admin_token` (default: $LLMSCHED_ADMIN_TOKEN) guards every endpoint but decisions, health and metrics."""
    app = Flask("llmsched")
    token = admin_token if admin_token is not None else os.environ.get("LLMSCHED_ADMIN_TOKEN", "")
    if token:
        app.before_request(lambda: check_admin_token(token))
    app.after_request(security_headers)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["llmsched.store"] = store if store is not None else store_from_env()
    app.extensions["llmsched.rng"] = rng if rng is not None else random.Random()
    app.extensions["llmsched.dispatch"] = DispatchRecorder(app.extensions["llmsched.store"])
    app.wsgi_app = SelectFastPath(
        app.wsgi_app,
        app.extensions["llmsched.store"],
        app.extensions["llmsched.rng"],
        MAX_BODY_BYTES,
        app.extensions["llmsched.dispatch"],
    )
    app.register_blueprint(decisions)
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
