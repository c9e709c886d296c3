"""Pool status endpoints: one pool (JSON or `?simple` text) and all pools, in the original's shapes.

`score` is what the next decision would use; a member that cannot be picked (no usable metrics, stale, disabled
on BIG-IP, above a threshold: the decision's own rule, llmsched.shared.routing's eligible()) shows `score: 0.0`
for the original's consumers and says why in the fields we add (`eligible`, `status`, `scrape_status`,
`data_age`).
"""

from __future__ import annotations

import time

from flask import Blueprint, redirect, request

from llmsched.api.responses import json_response, store, text_response
from llmsched.api.validation import RequestError
from llmsched.shared.errors import StoreError
from llmsched.shared.routing.decide import eligible
from llmsched.shared.routing.picker import shares

pools = Blueprint("pools", __name__)


def _member_view(member: dict, share: float | None, now: float) -> dict:
    scraped_at = member.get("scraped_at")
    return {
        "ip": member["address"],
        "port": member["port"],
        "score": member.get("score") if share is not None else 0.0,
        "percent": round(share * 100, 2) if share is not None else 0.0,
        "metrics": member.get("metrics") or {},
        "detected_variant": member.get("detected_variant"),
        "status": member.get("status"),
        "ratio": member.get("ratio", 1),
        "scrape_status": member.get("scrape_status"),
        "data_age": round(now - scraped_at, 3) if scraped_at else None,
        "eligible": share is not None,
    }


def pool_view(config: dict, snapshot: dict | None, membership: dict | None, now: float) -> dict:
    members = (snapshot or {}).get("members", [])
    # The decision's own rule (llmsched.shared.routing), as if BIG-IP offered every member.
    pool = eligible(config, snapshot, [m["key"] for m in members if "key" in m], now)
    share_of = {m["id"]: s for m, s in zip(pool.members, shares(pool.weights))}
    views = [_member_view(m, share_of.get(m["id"]), now) for m in members]
    computed_at = (snapshot or {}).get("computed_at")
    return {
        "name": config["name"],
        "partition": config["partition"],
        "engine_type": config.get("engine_type"),
        "member_count": len(views),
        "members": views,
        "mode": config.get("mode"),
        "pool_fallback": config.get("pool_fallback", False),
        "scores_age": round(now - computed_at, 3) if computed_at else None,
        "members_age": round(now - membership["fetched_at"], 3)
        if membership and membership.get("fetched_at")
        else None,
        "bigip_error": (membership or {}).get("error"),
    }


def _read(pool_keys: list[str]):
    try:
        return store().status_inputs(pool_keys)
    except StoreError as exc:
        raise RequestError(503, f"Redis unavailable: {exc}") from None


@pools.get("/pools/<pool_name>/<partition>/status")
def pool_status(pool_name: str, partition: str):
    key = f"{pool_name}:{partition}"
    ((config, snapshot, membership),) = _read([key])
    if config is None:
        raise RequestError(404, f"Pool {key} does not exist")
    view = pool_view(config, snapshot, membership, time.time())
    if "simple" in request.args:
        return text_response("\n".join(f"{m['ip']}:{m['port']} {m['score']:.4f}" for m in view["members"]))
    return json_response(view)


@pools.get("/pools/status")
def all_pools_status():
    try:
        keys = store().pool_keys()
    except StoreError as exc:
        raise RequestError(503, f"Redis unavailable: {exc}") from None
    now = time.time()
    views = [pool_view(c, s, m, now) for c, s, m in _read(keys) if c is not None] if keys else []
    return json_response({"pools": views})


@pools.get("/pools/status/")
@pools.get("/pools/<pool_name>/<partition>/status/")
def status_with_trailing_slash(**_: str):
    """307 to the same URL without the trailing slash, query kept: what the original (FastAPI) answers."""
    target = request.base_url.rstrip("/")
    if request.query_string:
        target += "?" + request.query_string.decode("latin-1")
    return redirect(target, code=307)
