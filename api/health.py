"""Readiness (`/health`, `/readyz`) and liveness (`/livez`) of an API replica.

Ready means this replica can give useful answers: Redis answers, a config is published, and at least one pool
has a score snapshot younger than its `stale_after`. Not ready answers 503, so a BIG-IP health monitor on
`/health` takes the replica out of the scheduler pool and the iRule falls back to BIG-IP's own balancing.
Alive only means the process serves HTTP; it never touches Redis, so a Redis outage does not restart replicas.
"""

from __future__ import annotations

import time

from flask import Blueprint

from llmsched.api.responses import json_response, store
from llmsched.shared.errors import StoreError

health = Blueprint("health", __name__)


def readiness(now: float) -> tuple[bool, dict]:
    try:
        keys = store().pool_keys()
        inputs = store().status_inputs(keys) if keys else []
    except StoreError as exc:
        return False, {"status": "unhealthy", "message": f"Redis unavailable: {exc}", "redis": "down"}
    if not keys:
        return False, {"status": "unhealthy", "message": "no pool configured in Redis yet", "redis": "ok"}
    pools = {}
    for key, (config, snapshot, _membership) in zip(keys, inputs):
        computed_at = (snapshot or {}).get("computed_at")
        age = round(now - computed_at, 3) if computed_at else None
        stale_after = float((config or {}).get("stale_after") or 0.0)
        pools[key] = {"data_age": age, "fresh": age is not None and age <= stale_after}
    ready = any(p["fresh"] for p in pools.values())
    message = "Scheduler running normally" if ready else "no pool has fresh scores"
    return ready, {"status": "healthy" if ready else "unhealthy", "message": message, "redis": "ok", "pools": pools}


@health.get("/health")
@health.get("/readyz")
def ready():
    ok, body = readiness(time.time())
    return json_response(body, 200 if ok else 503)


@health.get("/livez")
def alive():
    return json_response({"status": "alive"})


@health.get("/api_key_health")
def api_key_health():
    """The original's XInference key-sync health; XInference is not supported yet, so it is disabled."""
    return json_response({"status": "disabled", "message": "API key sync not configured"})
