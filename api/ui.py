"""The status page (`GET /ui`) and the JSON it renders (`GET /ui/data.json`).

The page is static HTML, CSS and JS in api/static/ (no build step, nothing fetched from elsewhere); its script
fetches `/ui/data.json` every 2 s and renders every pool: members with their BIG-IP state, engine, metrics,
score, expected share and data age, and the last errors. The JSON is `llmsched.shared.status.read_status`, the same
view `llmsched status` prints.
"""

from __future__ import annotations

import time
from pathlib import Path

from flask import Blueprint, send_from_directory

from llmsched.api.responses import json_response, store
from llmsched.shared.errors import StoreError
from llmsched.shared.status import read_status

STATIC = Path(__file__).resolve().parent / "static"

ui = Blueprint("ui", __name__, static_folder=str(STATIC), static_url_path="/ui/static")


@ui.get("/ui")
@ui.get("/ui/")
def page():
    response = send_from_directory(STATIC, "ui.html", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


@ui.get("/ui/data.json")
def data():
    try:
        body = read_status(store(), time.time())
    except StoreError as exc:
        return json_response({"error": f"Redis unavailable: {exc}"}, 503)
    response = json_response(body)
    response.headers["Cache-Control"] = "no-store"
    return response
