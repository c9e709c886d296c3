"""Pool status endpoints: one pool (JSON or `?simple` text) and all pools, in the original's shapes.

`score` is what the next decision would use; a member that cannot be picked (no usable metrics, stale, disabled
on BIG-IP) shows `score: 0.0` for the original's consumers and says why in the fields we add (`eligible`,
`status`, `scrape_status`, `data_age`).
"""

from __future__ import annotations

import time

from flask import Blueprint, redirect, request

from llmsched.api.responses import json_response, store, text_response
from llmsched.api.validation import RequestError
from llmsched.shared.errors import StoreError

pools = Blueprint("pools", __name__)


def _member_view(member: dict, total: float, now: float, stale_after: float) -> dict:
    score = member.get("score")
    scraped_at = member.get("scraped_at")
    age = round(now - scraped_at, 3) if scraped_at else None
    fresh = age is not None and age <= stale_after
    shown = score if (score is not None and fresh) else 0.0
    return {
        "ip": member["address"],
        "port": member["port"],
        "score": shown,
        "percent": round(max(shown, 0.0) / total * 100, 2) if total > 0 else 0.0,
        "metrics": member.get("metrics") or {},
        "detected_variant": member.get("detected_variant"),
        "status": member.get("status"),
        "ratio": member.get("ratio", 1),
        "scrape_status": member.get("scrape_status"),
        "data_age": age,
        "eligible": member.get("status") == "enabled" and fresh and (score or 0.0) > 0.0,
    }


def pool_view(config: dict, snapshot: dict | None, membership: dict | None, now: float) -> dict:
    stale_after = float(config.get("stale_after") or 0.0)
    members = (snapshot or {}).get("members", [])

    def usable(m: dict) -> float:
        fresh = m.get("scraped_at") and now - m["scraped_at"] <= stale_after
        return max(m.get("score") or 0.0, 0.0) if fresh else 0.0

    total = sum(usable(m) for m in members)
    views = [_member_view(m, total, now, stale_after) for m in members]
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
