"""Readiness (`/health`, `/readyz`) and liveness (`/livez`) of an API replica.

Ready (200) means this replica can pick a member for at least one pool: Redis answers, a config is published, and
some pool has scores younger than its `stale_after` over members read from BIG-IP. The body says `healthy` when
nothing is wrong and `degraded` with the reasons when something is (BIG-IP never read or failing for a pool, a
pool's scores stale); 503 when no pool can be routed, so a BIG-IP monitor on `/health` takes the replica out of the
scheduler pool and the iRule falls back to BIG-IP's own balancing (docs/api.md says what the monitor should expect).
Alive only means the process serves HTTP; it never touches Redis, so a Redis outage does not restart replicas.

Neither reads Redis: readiness is computed from the worker's in-memory copy of the routing data and the BIG-IP
membership (api/routing_state.py: pushed on change, fully reloaded every second), so it answers at once whatever
Redis or the clients do, and "Redis down" means no full reload succeeded for REDIS_DOWN_AFTER_S.
"""

from __future__ import annotations

import time

from flask import Blueprint, current_app

from llmsched.api.responses import json_response
from llmsched.api.routing_state import RECHECK_S, RoutingState

# A full reload runs every RECHECK_S (retried every 0.1 s after a failure): three missed in a row mean Redis is
# not reachable from this worker.
REDIS_DOWN_AFTER_S = 3 * RECHECK_S

health = Blueprint("health", __name__)


def pool_health(config: dict | None, snapshot: dict | None, membership: dict | None, now: float) -> dict:
    """One pool's state for /health: score age, what BIG-IP gave us, and the problems (empty when all is well)."""
    computed_at = (snapshot or {}).get("computed_at")
    age = round(now - computed_at, 3) if computed_at else None
    stale_after = float((config or {}).get("stale_after") or 0.0)
    fresh = age is not None and age <= stale_after
    fetched_at = (membership or {}).get("fetched_at")
    error = (membership or {}).get("error")
    member_count = len((membership or {}).get("members") or [])
    problems = []
    if fetched_at is None:
        bigip = "never read"
        problems.append("BIG-IP pool members never read" + (f": {error}" if error else ""))
    elif error:
        bigip = "failing"
        problems.append(f"BIG-IP read failing, using members read {now - fetched_at:.0f} s ago: {error}")
    else:
        bigip = "ok"
    if fetched_at is not None and member_count == 0:
        problems.append("BIG-IP reports no member in the pool")
    if not fresh:
        problems.append("scores stale" if age is not None else "not scored yet")
    return {
        "data_age": age,
        "fresh": fresh,
        "bigip": bigip,
        "bigip_error": error,
        "members_age": round(now - fetched_at, 3) if fetched_at else None,
        "member_count": member_count,
        "routable": fresh and fetched_at is not None and member_count > 0,
        "problems": problems,
    }


def readiness(state: RoutingState, now: float) -> tuple[bool, dict]:
    """From the worker's in-memory copy (api/routing_state.py), which a full reload refreshes every second:
    Redis counts as down when no full reload succeeded for REDIS_DOWN_AFTER_S."""
    if state.loaded_at is None or now - state.loaded_at > REDIS_DOWN_AFTER_S:
        since = "since this worker started" if state.loaded_at is None else f"for {now - state.loaded_at:.1f} s"
        message = f"Redis unavailable: no successful read {since}"
        return False, {"status": "unhealthy", "message": message, "redis": "down"}
    inputs = state.health_inputs()
    if not inputs:
        return False, {"status": "unhealthy", "message": "no pool configured in Redis yet", "redis": "ok"}
    pools = {key: pool_health(config, snapshot, membership, now) for key, config, snapshot, membership in inputs}
    ready = any(p["routable"] for p in pools.values())
    reasons = [f"{key}: {problem}" for key, p in pools.items() for problem in p["problems"]]
    if not any(p["fresh"] for p in pools.values()):
        status, message = "unhealthy", "no pool has fresh scores"
    elif reasons:
        status = "degraded"
        message = "; ".join(reasons) if ready else "no pool can be routed: " + "; ".join(reasons)
    else:
        status, message = "healthy", "Scheduler running normally"
    return ready, {"status": status, "message": message, "reasons": reasons, "redis": "ok", "pools": pools}


@health.get("/health")
@health.get("/readyz")
def ready():
    ok, body = readiness(current_app.extensions["llmsched.routing"], time.time())
    return json_response(body, 200 if ok else 503)


@health.get("/livez")
def alive():
    return json_response({"status": "alive"})


@health.get("/api_key_health")
def api_key_health():
    """The original's XInference key-sync health; XInference is not supported yet, so it is disabled."""
    return json_response({"status": "disabled", "message": "API key sync not configured"})
