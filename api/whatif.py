"""The what-if endpoints `simulate` and `analyze`: many picks from one read of a pool, for operators.

They read Redis directly (not the worker's in-memory routing data): they are not on BIG-IP's path, and an
operator asking "what would happen now" wants what Redis holds now.
"""

from __future__ import annotations

import time

from flask import Blueprint, request

from llmsched.api import analysis
from llmsched.api.responses import json_response, rng, store
from llmsched.api.validation import RequestError, parse_iterations
from llmsched.shared.errors import StoreError
from llmsched.shared.routing.decide import eligible

whatif = Blueprint("whatif", __name__)


def _inputs(pool_name: str, partition: str):
    req = analysis.what_if_request(request.get_data(cache=False))
    key = f"{pool_name}:{partition}"
    try:
        config, snapshot = store().routing_data([key])[key]
    except StoreError as exc:
        raise RequestError(503, f"Redis unavailable: {exc}") from None
    return req, config, snapshot


@whatif.post("/pools/<pool_name>/<partition>/simulate")
def simulate(pool_name: str, partition: str):
    """Pick `iterations` times from one read of the pool (the original bypasses pool_fallback here too)."""
    iterations = parse_iterations(request.args.get("iterations"), 100)
    req, config, snapshot = _inputs(pool_name, partition)
    pool = eligible(config, snapshot, req.members, time.time())
    return json_response({"results": analysis.simulate(pool, iterations, rng()), "iterations": iterations})


@whatif.post("/pools/<pool_name>/<partition>/analyze")
def analyze(pool_name: str, partition: str):
    iterations = parse_iterations(request.args.get("iterations"), 1000)
    req, config, snapshot = _inputs(pool_name, partition)
    key = f"{pool_name}:{partition}"
    if config is None:
        return json_response({"error": f"Pool not found: {key}"})
    pool = eligible(config, snapshot, req.members, time.time())
    if not pool.members:
        return json_response(analysis.error_for(pool))
    # Beside the original's pool_info keys: the pool's size and how many candidates BIG-IP offered.
    extra = {"pool_members": len((snapshot or {}).get("members", [])), "candidates": len(req.members)}
    return json_response(analysis.analyze(pool, iterations, rng(), pool_name, partition, extra))
