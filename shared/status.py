"""The operator's view of every pool, read from Redis: what the status page, `llmsched status` and the API's
scrape-time gauges show.

Per member: BIG-IP status, engine, load metrics, score, whether a decision could pick it (and if not, why), its
expected share and the age of its data, and its prefix-cache hit rate as the engine reports it next to the prefix
index's estimate (`prefix_hit_rate` since the engine started, `prefix_hit_rate_recent` over the last scrape
interval of `prefix_window_s` seconds, `prefix_estimate`); per pool: data ages and the last errors (BIG-IP read,
scrapes). The expected share is the probability that a decision offering every member picks it: the same filters and
herd-control weights as a real decision (llmsched.shared.routing), so it is what the next requests will see.
"""

from __future__ import annotations

from typing import Any

import redis

from llmsched.shared import scrape_stats
from llmsched.shared.errors import StoreError
from llmsched.shared.prefix_index import parse_stats
from llmsched.shared.routing.decide import eligible
from llmsched.shared.routing.picker import shares
from llmsched.shared.routing.reasons import Reason
from llmsched.shared.store import Store


def _age(now: float, at: float | None) -> float | None:
    return round(now - at, 3) if at else None


def engine_hit_rate(doc: dict) -> float | None:
    """A member's prefix-cache hit rate as its engine reports it: cached / looked-up prompt tokens since the
    engine started (the counters), else the engine's own gauge; None when it reports neither."""
    cache = doc.get("prefix_cache") or {}
    hits, queries = cache.get("hits_total"), cache.get("queries_total")
    if isinstance(hits, (int, float)) and isinstance(queries, (int, float)) and queries > 0:
        return round(min(1.0, hits / queries), 4)
    rate = cache.get("hit_rate")
    return round(float(rate), 4) if isinstance(rate, (int, float)) else None


def _window_s(window: object) -> float | None:
    """Length of the recent hit rate's window (between two scrapes), s."""
    if not isinstance(window, dict):
        return None
    since, at = window.get("since"), window.get("at")
    return round(at - since, 3) if isinstance(since, (int, float)) and isinstance(at, (int, float)) else None


def index_estimate(counts: dict[str, int] | None) -> float | None:
    """The prefix index's estimate of a member's hit rate: of the fingerprints of the requests sent to it, the
    share the index said it already held; None before any request with fingerprints."""
    if not counts or not counts.get("sent"):
        return None
    return round(counts.get("matched", 0) / counts["sent"], 4)


def _member_rows(
    config: dict,
    snapshot: dict | None,
    membership: dict | None,
    metrics: dict[str, dict],
    dispatch: dict[str, int],
    now: float,
    prefix_stats: dict[str, dict[str, int]] | None = None,
) -> list[dict[str, Any]]:
    scored = (snapshot or {}).get("members") or []
    known = {m["id"] for m in scored}
    # Members BIG-IP reported after the last snapshot are shown too (not scored yet), so nothing is hidden.
    unscored = [m for m in (membership or {}).get("members") or [] if m.get("id") not in known]
    pool = eligible(config, snapshot, [m["key"] for m in scored], now)
    share_of = {m["id"]: s for m, s in zip(pool.members, shares(pool.weights))}
    rows = []
    for m in scored + unscored:
        doc = metrics.get(m["id"]) or {}
        picked = m["id"] in share_of
        reason = eligible(config, snapshot, [m["key"]], now).reason if "key" in m else Reason.NOT_SCORED
        why = reason.of_member if reason is not None and not picked else ""
        rows.append(
            {
                "id": m["id"],
                "bigip_status": m.get("status"),
                "ratio": m.get("ratio", 1),
                "engine": doc.get("engine"),
                "variant": doc.get("detected_variant") or m.get("detected_variant"),
                "detection": doc.get("detection_status"),
                "metrics": m.get("metrics") or doc.get("metrics") or {},
                "score": m.get("score"),
                "eligible": picked,
                "why_not": why,
                "share": round(share_of.get(m["id"], 0.0), 6),
                "sent_since_scrape": int(dispatch.get(m["id"], 0)),
                "data_age": _age(now, doc.get("scraped_at") or m.get("scraped_at")),
                "scrape_status": doc.get("status") or m.get("scrape_status") or "never",
                "scrape_error": doc.get("error") if doc.get("status") == "error" else None,
                "prefix_hit_rate": engine_hit_rate(doc),
                # the same over the last scrape interval (scorer/prefix_window.py): moves when routing does
                "prefix_hit_rate_recent": m.get("prefix_hit_rate_recent"),
                "prefix_window_s": _window_s(m.get("prefix_window")),
                "prefix_estimate": index_estimate((prefix_stats or {}).get(m["id"])),
                "kv_capacity_tokens": (doc.get("prefix_cache") or {}).get("capacity_tokens"),
            }
        )
    return rows


def pool_status(
    config: dict,
    snapshot: dict | None,
    membership: dict | None,
    metrics: dict[str, dict],
    dispatch: dict[str, int],
    now: float,
    prefix_stats: dict[str, dict[str, int]] | None = None,
) -> dict[str, Any]:
    """One pool's view; pure, from what `read_status` fetched."""
    members = _member_rows(config, snapshot, membership, metrics, dispatch, now, prefix_stats)
    errors = []
    if membership and membership.get("error"):
        errors.append({"source": "BIG-IP", "at": membership.get("error_at"), "message": membership["error"]})
    errors += [
        {
            "source": f"scrape {m['id']}",
            "at": (metrics.get(m["id"]) or {}).get("scraped_at"),
            "message": m["scrape_error"],
        }
        for m in members
        if m["scrape_error"]
    ]
    return {
        "key": f"{config['name']}:{config['partition']}",
        "name": config["name"],
        "partition": config["partition"],
        "engine_type": config.get("engine_type"),
        "mode": config.get("mode"),
        "pool_fallback": bool(config.get("pool_fallback")),
        "herd_control": bool(config.get("herd_control")),
        "stale_after": config.get("stale_after"),
        "scores_age": _age(now, (snapshot or {}).get("computed_at")),
        "members_age": _age(now, (membership or {}).get("fetched_at")),
        "eligible": sum(1 for m in members if m["eligible"]),
        "members": members,
        "errors": errors,
    }


def read_status(store: Store, now: float, pools: list[str] | None = None) -> dict[str, Any]:
    """Every configured pool (or those in `pools`), with the published config's identity; raises StoreError."""
    keys = store.pool_keys()
    if pools is not None:
        keys = [k for k in keys if k in pools]
    try:
        meta = {k.decode(): v.decode() for k, v in store.client.hgetall(store.keys.config_meta).items()}
    except redis.RedisError as exc:
        raise StoreError(f"redis: {type(exc).__name__}: {exc}") from exc
    views = []
    for key in keys:
        config, snapshot, dispatch = store.decision_inputs(key)
        if config is None:  # removed between the two reads
            continue
        views.append(
            pool_status(
                config, snapshot, store.members(key), store.metrics(key), dispatch, now, _prefix_stats(store, key)
            )
        )
    return {"generated_at": now, "config": meta, "pools": views, "scrapers": scrape_stats.read(store, "scraper", now)}


def _prefix_stats(store: Store, pool_key: str) -> dict[str, dict[str, int]]:
    try:
        return parse_stats(store.client.hgetall(store.keys.pool_prefix_stats(pool_key)))
    except redis.RedisError as exc:
        raise StoreError(f"redis: {type(exc).__name__}: {exc}") from exc


def select_pools(all_keys: list[str], wanted: str | None) -> list[str] | None:
    """`--pool NAME` or `NAME:PARTITION` -> the pool keys it names (None: all)."""
    if not wanted:
        return None
    if ":" in wanted:
        return [wanted]
    return [k for k in all_keys if k.split(":", 1)[0] == wanted]
