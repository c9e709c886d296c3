"""Small helpers the blueprints share: response builders and access to the app's store and random source."""

from __future__ import annotations

import random

import orjson
from flask import Response, current_app

from llmsched.shared.store import Store

TEXT = "text/plain; charset=utf-8"


def json_response(payload, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status=status, mimetype="application/json")


def text_response(body: str, status: int = 200) -> Response:
    """A bare text body: no trailing newline, exactly what the iRule compares against."""
    return Response(body, status=status, content_type=TEXT)


def store() -> Store:
    return current_app.extensions["llmsched.store"]


def rng() -> random.Random:
    return current_app.extensions["llmsched.rng"]
