"""The data-plane endpoint `POST /scheduler/select` and its what-if twins `simulate` and `analyze`.

`select` makes one pipelined Redis read and answers in plain text. If Redis cannot answer in time it answers
`none`: the iRule then lets BIG-IP balance, which is always a safe answer.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from flask import Blueprint, current_app, request
from loguru import logger

from llmsched.api import analysis
from llmsched.api.dispatch import DispatchRecorder
from llmsched.api.metrics import record_decision, record_rejected
from llmsched.api.responses import json_response, rng, store, text_response
from llmsched.api.validation import RequestError, parse_iterations, parse_schedule_request
from llmsched.shared.errors import StoreError
from llmsched.shared.routing.decide import NONE, decide, eligible
from llmsched.shared.store import Store

decisions = Blueprint("decisions", __name__)


@dataclass(frozen=True)
class Outcome:
    answer: str
    pool_key: str = ""  # set when the pool is configured
    member_id: str | None = None  # set when a member was picked
    count_ttl: float = 0.0  # > 0 when herd control wants the pick counted
    reason: str = ""  # Decision.reason (metrics)
    candidates: int = 0  # members BIG-IP offered (metrics)


def answer_select(raw_body: bytes, store_: Store, rng_: random.Random) -> Outcome:
    """The answer to one select request; raises RequestError for a bad body (400/422)."""
    req = parse_schedule_request(raw_body)
    try:
        config, snapshot, dispatch = store_.decision_inputs(req.pool_key)
    except StoreError as exc:
        # Not a warning per request: the store's circuit breaker logs each outage once, when it starts and ends.
        logger.debug("select {}: answering none, Redis unavailable: {}", req.pool_key, exc)
        return Outcome(NONE, reason="redis unavailable", candidates=len(req.members))
    decision = decide(config, snapshot, req.members, time.time(), rng_, dispatch)
    logger.debug("select {} -> {} ({})", req.pool_key, decision.answer, decision.reason)
    ttl = float(config.get("stale_after") or 60.0) if decision.member_id and config.get("herd_control") else 0.0
    return Outcome(
        decision.answer,
        req.pool_key if config is not None else "",
        decision.member_id,
        ttl,
        decision.reason,
        len(req.members),
    )


def record_outcome(outcome: Outcome, recorder: DispatchRecorder, seconds: float) -> None:
    """Count the decision in the metrics and for herd control; called after the answer is sent, so it never
    delays BIG-IP. `seconds`: how long the answer took."""
    record_decision(
        outcome.pool_key or None, outcome.answer, outcome.reason, outcome.member_id, outcome.candidates, seconds
    )
    if outcome.member_id is not None and outcome.count_ttl > 0.0:
        recorder.record(outcome.pool_key, outcome.member_id, outcome.count_ttl)


@decisions.post("/scheduler/select")
def select():
    # Normally answered by llmsched.api.fastpath before Flask routes it; kept so the route, its 405 and a Flask-only
    # deployment (fast path off) behave the same.
    started = time.perf_counter()
    try:
        outcome = answer_select(request.get_data(cache=False), store(), rng())
    except RequestError as exc:
        record_rejected(exc.status)
        raise
    seconds = time.perf_counter() - started
    response = text_response(outcome.answer)
    recorder = current_app.extensions["llmsched.dispatch"]
    response.call_on_close(lambda: record_outcome(outcome, recorder, seconds))
    return response


def _inputs(pool_name: str, partition: str):
    req = analysis.what_if_request(request.get_data(cache=False))
    try:
        config, snapshot, _ = store().decision_inputs(f"{pool_name}:{partition}")
    except StoreError as exc:
        raise RequestError(503, f"Redis unavailable: {exc}") from None
    return req, config, snapshot


@decisions.post("/pools/<pool_name>/<partition>/simulate")
def simulate(pool_name: str, partition: str):
    """Pick `iterations` times from one read of the pool (the original bypasses pool_fallback here too)."""
    iterations = parse_iterations(request.args.get("iterations"), 100)
    req, config, snapshot = _inputs(pool_name, partition)
    pool = eligible(config, snapshot, req.members, time.time())
    return json_response({"results": analysis.simulate(pool, iterations, rng()), "iterations": iterations})


@decisions.post("/pools/<pool_name>/<partition>/analyze")
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
