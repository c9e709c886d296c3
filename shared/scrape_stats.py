"""Each scraper's last cycle, in Redis: what `llmsched status` and the status page show about the scrapers.

One hash per collector role (`Keys.collector_stats`): holder id -> JSON {at, interval, cycle_duration, lateness,
skipped_ticks (since the process started), members, targets, members_per_second, scrapers}. A scraper writes its
field after every cycle; readers drop fields older than `MAX_AGE_S` (a scraper that died or left) and delete them.
"""

from __future__ import annotations

from typing import Any

import redis

from llmsched.shared.errors import StoreError
from llmsched.shared.store import Store, dumps, loads

MAX_AGE_S = 10.0  # a field not rewritten for this long belongs to a scraper that is gone


def save(store: Store, role: str, holder: str, stats: dict[str, Any]) -> None:
    try:
        store.client.hset(store.keys.collector_stats(role), holder, dumps(stats))
    except redis.RedisError as exc:
        raise StoreError(f"redis: {type(exc).__name__}: {exc}") from exc


def read(store: Store, role: str, now: float) -> list[dict[str, Any]]:
    """The live scrapers' last cycles, by holder id; fields of scrapers gone for MAX_AGE_S are deleted."""
    key = store.keys.collector_stats(role)
    try:
        raw = store.client.hgetall(key)
        out, gone = [], []
        for field, value in sorted(raw.items()):
            stats = loads(value)
            if not isinstance(stats, dict) or now - float(stats.get("at") or 0) > MAX_AGE_S:
                gone.append(field)
                continue
            out.append({"holder": field.decode(), **stats, "age": round(now - float(stats["at"]), 3)})
        if gone:
            store.client.hdel(key, *gone)
    except redis.RedisError as exc:
        raise StoreError(f"redis: {type(exc).__name__}: {exc}") from exc
    return out
