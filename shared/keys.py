"""The Redis key layout: the only module that spells a key. docs/redis.md documents every key named here.

All keys live under a namespace (`redis.namespace`, default `llmsched`). Every key of one pool carries the
Redis Cluster hash tag `{<pool>:<partition>}`, so a decision's multi-key read (config, scores, dispatch
counters) goes to one slot and one node, and can be pipelined or scripted on a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    namespace: str = "llmsched"

    # --- global keys ---------------------------------------------------------------------------------------
    @property
    def pools(self) -> str:
        """String, JSON list of pool keys (`name:partition`) in config order: the configured pools."""
        return f"{self.namespace}:pools"

    @property
    def config_meta(self) -> str:
        """Hash: version (sha256 of the published config), published_at, source, publisher."""
        return f"{self.namespace}:config"

    def lease(self, role: str) -> str:
        """String with a TTL (PX, `scheduler.ha_lease_ttl`): the holder id (`host:pid:random`) of a collector
        role's lease (`poller`, `scraper`); only the holder works. See shared/lease.py and docs/ha.md."""
        return f"{self.namespace}:lease:{role}"

    @property
    def changes(self) -> str:
        """Pub/sub channel: a pool key when that pool's score snapshot was written, `*` when a config was
        published. API workers keep the routing data in memory and reload on each message (docs/api.md)."""
        return f"{self.namespace}:changes"

    @property
    def scoring_queue(self) -> str:
        """Name of the rq queue of scoring jobs (rq spells its own keys `rq:queue:<name>` etc.)."""
        return f"{self.namespace}-scoring"

    @property
    def scoring_latency(self) -> str:
        """Hash of running totals of the enqueue -> snapshot-written latency of scoring jobs, per job reason:
        `<reason>:count`, `<reason>:sum` and `<reason>:max` (seconds) and cumulative histogram buckets
        `<reason>:le:<bound>` (`+Inf` included), Prometheus-style; written by the scoring worker."""
        return f"{self.namespace}:scoring:latency"

    @property
    def scoring_latency_recent(self) -> str:
        """List, newest first, capped (a few thousand): JSON {pool, reason, latency, at} of recent scoring jobs,
        for percentiles (`llmsched scorer --report`)."""
        return f"{self.namespace}:scoring:latency:recent"

    # --- per-pool keys -------------------------------------------------------------------------------------
    def _pool(self, pool_key: str, suffix: str) -> str:
        return f"{self.namespace}:pool:{{{pool_key}}}:{suffix}"

    def pool_config(self, pool_key: str) -> str:
        """String, JSON: the pool's effective routing config (fallback, thresholds, mode, staleness)."""
        return self._pool(pool_key, "config")

    def pool_members(self, pool_key: str) -> str:
        """String, JSON: BIG-IP membership {fetched_at, members[], error, error_at} written by the poller."""
        return self._pool(pool_key, "members")

    def pool_metrics(self, pool_key: str) -> str:
        """Hash: member id -> JSON {scraped_at, status, metrics{}, engine, ...} written by the scraper."""
        return self._pool(pool_key, "metrics")

    def pool_scores(self, pool_key: str) -> str:
        """String, JSON snapshot {computed_at, mode, members[]} written atomically by the scoring step."""
        return self._pool(pool_key, "scores")

    def pool_dispatch(self, pool_key: str) -> str:
        """Hash: member id -> decisions sent to it since its last scrape (herd control)."""
        return self._pool(pool_key, "dispatch")

    def pool_scoring_pending(self, pool_key: str) -> str:
        """String with a TTL: set while a scoring job for the pool is queued, so bursts enqueue one job."""
        return self._pool(pool_key, "scoring-pending")

    def pool_all(self, pool_key: str) -> tuple[str, ...]:
        return tuple(
            self._pool(pool_key, s) for s in ("config", "members", "metrics", "scores", "dispatch", "scoring-pending")
        )
