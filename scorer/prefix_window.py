"""A member's prefix-cache hit rate over a recent window: the engines' counters between two scrapes.

Engines count prompt tokens served from their prefix cache and tokens looked up since they started (the scrape
document's `prefix_cache.hits_total` / `queries_total`: vLLM's prefix_cache_hits/queries, SGLang's cached/prompt
tokens). Their ratio is the hit rate since the engine started, which after hours of traffic no longer moves
when routing changes. The scoring step keeps each member's counters of the last scrape in the snapshot, so the
next snapshot has two readings and the difference is the rate of that interval:

    recent hit rate = (hits now - hits then) / (queries now - queries then)

* A rescore of the same scrape (another job for the same data) keeps the window it had: the counters did not move.
* Counters that went down mean the engine restarted: no window until the next scrape.
* No query in the window (no traffic): no rate, rather than a rate of nothing.
Pure: the previous snapshot member and the current scrape document in, the snapshot fields out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def counters(doc: Mapping | None) -> dict | None:
    """The scrape document's prefix-cache counters with its scrape time; None when the engine reports none."""
    if not doc or doc.get("status") != "ok":
        return None
    cache = doc.get("prefix_cache") or {}
    at, hits, queries = (
        _number(doc.get("scraped_at")),
        _number(cache.get("hits_total")),
        _number(cache.get("queries_total")),
    )
    if at is None or hits is None or queries is None:
        return None
    return {"at": at, "hits": hits, "queries": queries}


def window(current: dict | None, previous: Mapping | None) -> dict | None:
    """The counters' difference between the previous snapshot's scrape and this one: `since`, `at`, `hits`,
    `queries`; None without two readings of a running engine."""
    if current is None or not previous:
        return None
    before = previous.get("prefix_counters")
    if not isinstance(before, Mapping):
        return None
    if before.get("at") == current["at"]:  # the same scrape scored again
        kept = previous.get("prefix_window")
        return dict(kept) if isinstance(kept, Mapping) else None
    since, hits_then, queries_then = (_number(before.get(k)) for k in ("at", "hits", "queries"))
    if since is None or hits_then is None or queries_then is None or since > current["at"]:
        return None
    hits, queries = current["hits"] - hits_then, current["queries"] - queries_then
    if hits < 0 or queries < 0:  # the engine restarted and its counters began again
        return None
    return {"since": since, "at": current["at"], "hits": hits, "queries": queries}


def recent_hit_rate(win: Mapping | None) -> float | None:
    """Hits / queries of the window, at most 1; None without a window or without a query in it."""
    if not win or not win.get("queries"):
        return None
    return round(min(1.0, win["hits"] / win["queries"]), 4)


def fields(doc: Mapping | None, previous: Mapping | None) -> dict:
    """The snapshot member's `prefix_counters`, `prefix_window` and `prefix_hit_rate_recent`."""
    now = counters(doc)
    win = window(now, previous)
    return {"prefix_counters": now, "prefix_window": win, "prefix_hit_rate_recent": recent_hit_rate(win)}
