"""The scoring step: a pool's membership and metrics in Redis -> the pool's score snapshot in Redis.

Rule for members without usable metrics (docs/reliability.md repeats it): a member is scored only when its last
scrape succeeded (`status: ok`), is younger than the pool's `stale_after`, and carries the metrics the mode needs.
Any other member gets `score: null`, and the decision filters never pick a member whose score is null. The
original instead kept a dead member's last score and kept sending it traffic (docs/api.md, select).
"""

from __future__ import annotations

import time

from loguru import logger

from llmsched.scorer import prefix_window
from llmsched.scorer.capacity import KV_SIZE, estimate_slack, peer_footprint
from llmsched.scorer.modes import compute_scores
from llmsched.shared.members import member_key
from llmsched.shared.store import Store


def usable_metrics(doc: dict | None, now: float, stale_after: float) -> dict | None:
    if not doc or doc.get("status") != "ok":
        return None
    if (doc.get("scraped_at") or 0.0) < now - stale_after:
        return None
    return doc.get("metrics") or None


def kv_tokens(metrics: dict[str, dict], member: dict) -> object:
    """The KV pool in tokens the member's last scrape reports (`prefix_cache.capacity_tokens`), or None."""
    prefix = (metrics.get(f"{member['address']}:{member['port']}") or {}).get("prefix_cache")
    return prefix.get("capacity_tokens") if isinstance(prefix, dict) else None


def build_snapshot(
    config: dict, membership: dict | None, metrics: dict[str, dict], now: float, previous: dict | None = None
) -> dict:
    """Score every member of one pool; pure, so tests and the routing simulator call it directly. `previous`:
    the pool's last snapshot, whose prefix-cache counters make the recent hit rate (scorer/prefix_window.py)."""
    members = (membership or {}).get("members", [])
    before = {m.get("id"): m for m in (previous or {}).get("members") or [] if isinstance(m, dict)}
    stale_after = float(config.get("stale_after") or 0.0)
    usable = [usable_metrics(metrics.get(f"{m['address']}:{m['port']}"), now, stale_after) for m in members]
    # BIG-IP's member ratio and the KV size the engine publishes ride along as capacity hints (the saturation
    # mode and the slack read them; the original's modes ignore them).
    scored = [
        (i, {**u, "ratio": members[i].get("ratio", 1), KV_SIZE: kv_tokens(metrics, members[i])})
        for i, u in enumerate(usable)
        if u is not None
    ]
    peers = peer_footprint([u for _, u in scored])
    hints = dict(scored)
    scores: list[float | None] = [None] * len(members)
    if config.get("mode") and scored:
        inputs = [u for _, u in scored]
        results = compute_scores(config["mode"], inputs, config.get("weights") or {})
        for (i, _), score in zip(scored, results):
            scores[i] = score
    out = []
    for i, (member, score) in enumerate(zip(members, scores)):
        mid = f"{member['address']}:{member['port']}"
        scrape = metrics.get(mid) or {}
        out.append(
            {
                "id": mid,
                "key": member_key(member["address"], member["port"]),
                "address": member["address"],
                "port": member["port"],
                "status": member.get("status", "enabled"),
                "ratio": member.get("ratio", 1),
                "score": score,
                # requests it can still take before saturating (llmsched.scorer.capacity), shown by status and the UI
                "slack": None if i not in hints else estimate_slack(hints[i], member.get("ratio", 1), peers),
                "metrics": scrape.get("metrics") or {},
                "scraped_at": scrape.get("scraped_at"),
                "scrape_status": scrape.get("status", "never"),
                "detected_variant": scrape.get("detected_variant"),
                **prefix_window.fields(scrape, before.get(mid)),
            }
        )
    return {
        "pool": config.get("name"),
        "partition": config.get("partition"),
        "engine_type": config.get("engine_type"),
        "mode": config.get("mode"),
        "computed_at": now,
        "members_fetched_at": (membership or {}).get("fetched_at"),
        "members": out,
    }


def score_pool(store: Store, pool_key: str, now: float | None = None) -> dict | None:
    """Recompute and store one pool's snapshot; None when the pool is not configured."""
    config, membership, metrics = store.scoring_inputs(pool_key)
    if config is None:
        logger.debug("scoring skipped: pool {} is not configured", pool_key)
        return None
    snapshot = build_snapshot(config, membership, metrics, time.time() if now is None else now, store.scores(pool_key))
    store.set_scores(pool_key, snapshot)
    return snapshot
