"""The Redis key layout: the only module that spells a key.

All keys live under a namespace (`redis.namespace`, default `llmsched`). Every key of one pool carries the
Redis Cluster hash tag `{<pool>:<partition>}`, so a decision's multi-key read (config, scores, dispatch
counters) goes to one slot and one node, and can be pipelined or scripted on a cluster.

Each key is declared with `@key(type, writers, readers)` and its docstring says what it holds; docs/redis.md's key
table is generated from these declarations (`python -m llmsched.shared.keys`), and a test keeps the two equal.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., str])


@dataclass(frozen=True)
class KeyDoc:
    type: str
    writers: str
    readers: str


def key(type: str, writers: str, readers: str) -> Callable[[F], F]:
    """Declare a key method: its Redis type, who writes and who reads it (docs/redis.md's columns)."""

    def mark(fn: F) -> F:
        fn.__keydoc__ = KeyDoc(type, writers, readers)  # type: ignore[attr-defined]
        return fn

    return mark


@dataclass(frozen=True)
class Keys:
    namespace: str = "llmsched"

    # --- global keys ---------------------------------------------------------------------------------------
    @property
    @key("string (JSON list)", "every process started with `--config` (publish)", "api, scorer")
    def pools(self) -> str:
        """The configured pool keys (`name:partition`) in config order."""
        return f"{self.namespace}:pools"

    @property
    @key("hash", "publish", "ops")
    def config_meta(self) -> str:
        """`version` (hash of the published routing config), `published_at`, `source`, `publisher`, `generation`
        (the config file's change time, ctime, in ns: a publisher on an older file never overwrites a newer one)."""
        return f"{self.namespace}:config"

    @key("string, TTL `ha_lease_ttl`", "the collector holding the role", "the other collectors of the role, ops")
    def lease(self, role: str) -> str:
        """The holder id (`host:pid:random`) of a collector role's lease (`poller`); only the holder
        works; `SET NX PX` to take it, compare-and-pexpire to renew, compare-and-delete to release (docs/ha.md)."""
        return f"{self.namespace}:lease:{role}"

    @key("hash", "every scraper (one script, every `ha_lease_ttl`/3)", "the scrapers, ops")
    def shard_members(self, role: str) -> str:
        """Field = scraper id `host:pid:random`, value = `"<expires_ms> <joined_ms>"` on Redis's clock, one per live
        scraper (`role` is `scraper`); expired fields are dropped by the next renewal, a stopping scraper deletes its
        own; who scrapes which member follows from it (collectors/shards.py, docs/ha.md "Sharded scrapers")."""
        return f"{self.namespace}:shards:{role}"

    @key("hash", "each scraper, after every cycle", "`llmsched status`, status page")
    def collector_stats(self, role: str) -> str:
        """Field = scraper id, value = JSON of its last cycle: `at`, `interval`, `cycle_duration`, `lateness`,
        `skipped_ticks` (since start), `members`, `targets`, `members_per_second`, `scrapers`; readers delete fields
        not rewritten for 10 s (shared/scrape_stats.py)."""
        return f"{self.namespace}:stats:{role}"

    @property
    @key("pub/sub channel (no key)", "publish (`*`), scoring step (the pool key)", "api")
    def changes(self) -> str:
        """Announces each published config (`*`) and each pool's new score snapshot (`<pool>`) in the same pipeline
        as the write; API workers keep the routing data in memory and reload what it names (docs/api.md)."""
        return f"{self.namespace}:changes"

    @property
    @key("rq queue (rq spells `rq:queue:<name>` and its other `rq:*` keys)", "collectors", "scorer")
    def scoring_queue(self) -> str:
        """Scoring jobs, enqueued by function name (`llmsched.scorer.jobs.score_pool_job`) with rq's JSON serializer
        (zlib-compressed JSON `[func, null, [pool, enqueued_at, reason], {}]`), never pickles."""
        return f"{self.namespace}-scoring"

    @property
    @key("hash", "scorer", "ops, `llmsched scorer --report`")
    def scoring_latency(self) -> str:
        """Running totals of the enqueue -> snapshot-written latency of scoring jobs, per job reason:
        `<reason>:count`, `<reason>:sum` and `<reason>:max` (seconds) and cumulative histogram buckets
        `<reason>:le:<bound>` (`+Inf` included), Prometheus-style."""
        return f"{self.namespace}:scoring:latency"

    @property
    @key("list (JSON), capped", "scorer", "ops")
    def scoring_latency_recent(self) -> str:
        """Newest first: `{pool, reason, latency, at}` of the last 5000 scoring jobs, for percentiles."""
        return f"{self.namespace}:scoring:latency:recent"

    # --- per-pool keys -------------------------------------------------------------------------------------
    def _pool(self, pool_key: str, suffix: str) -> str:
        return f"{self.namespace}:pool:{{{pool_key}}}:{suffix}"

    @key("string (JSON)", "publish", "api, scorer")
    def pool_config(self, pool_key: str) -> str:
        """The pool's routing config: `name`, `partition`, `engine_type`, `pool_fallback`,
        `member_running_req_threshold`, `member_waiting_queue_threshold`, `stale_after` (s), `herd_control` (bool,
        `scheduler.herd_control`: decisions share one weighted round robin through `dispatch`), `mode`, `weights`."""
        return self._pool(pool_key, "config")

    @key("string (JSON)", "poller", "scorer, scraper, api status")
    def pool_members(self, pool_key: str) -> str:
        """BIG-IP membership: `fetched_at`, `members[]` (`address`, `port`, `name`, `session`, `state`, `ratio`,
        `priority_group`, `ephemeral`, `id`, `status`), `error`, `error_at`."""
        return self._pool(pool_key, "members")

    @key("hash", "scraper", "scorer")
    def pool_metrics(self, pool_key: str) -> str:
        """Field = member id (`10.0.0.1:8000`, `10.0.0.1%2:8000`), value = JSON `scraped_at`, `status`
        (`ok`/`error`), `error`, `metrics` {`waiting_queue`, `cache_usage`, `running_req`}, `kv_cache_max`, `engine`,
        `detected_variant`, `detection_status`, `prefix_cache` {`hits_total`, `queries_total`, `hit_rate`,
        `capacity_tokens`, `block_size`} (null when the engine exposes none), `duration`, `shared_with` (the other
        member ids scraped from the same metrics URL, e.g. members that share one `metrics.port`; empty when none)."""
        return self._pool(pool_key, "metrics")

    @key("string (JSON)", "scoring step", "api")
    def pool_scores(self, pool_key: str) -> str:
        """The snapshot a decision reads, written with one SET: `pool`, `partition`, `engine_type`, `mode`,
        `computed_at`, `members_fetched_at` (the BIG-IP read it was computed from, null if BIG-IP was never read),
        `members[]` with `id`, `key`, `address`, `port`, `status`, `ratio`, `score` (null = cannot be picked),
        `slack` (requests it can still take before saturating, from scorer/capacity.py; null without usable
        metrics), `metrics`, `scraped_at`, `scrape_status`, `detected_variant`, `prefix_counters` {`at`, `hits`,
        `queries`} (the engine's prefix-cache counters at that scrape; null when it reports none), `prefix_window`
        {`since`, `at`, `hits`, `queries`} (their change since the previous scrape) and `prefix_hit_rate_recent`
        (hits / queries of that window; scorer/prefix_window.py)."""
        return self._pool(pool_key, "scores")

    @key(
        "hash, TTL `stale_after` (rounded up)",
        "api (every 5 ms per deciding worker: `HINCRBY` of its decisions since, `EXPIRE`)",
        "api (read back in the same round trip), status",
    )
    def pool_dispatch(self, pool_key: str) -> str:
        """Member id -> decisions sent to it since its last scrape (herd control); a member's field is deleted by
        each scrape write of that member."""
        return self._pool(pool_key, "dispatch")

    @key(
        "sorted set, TTL 600 s",
        "api (every 5 ms per worker that answered with fingerprints: `ZADD`, trims, `EXPIRE`)",
        "api (each worker once per pool, when it starts following the pool's `pool_prefix_log`)",
    )
    def pool_prefix(self, pool_key: str, member_id: str) -> str:
        """The prefix index of one member (shared/prefix_index.py): member = a prompt fingerprint the iRule sent
        (`<16 hex>`, or `<16 hex>@<model>` when the request named its model), score = when a decision last sent it
        there (Unix seconds; a request's leading fingerprint gets the highest score, so it is evicted last).
        Trimmed to the member's KV capacity / 128 tokens (lowest scores first); entries older than 600 s count as
        absent and are removed by the next record."""
        return self._pool(pool_key, f"prefix:{member_id}")

    @key(
        "stream, capped at ~10,000 entries, TTL 600 s",
        "api (every 5 ms per worker that answered with fingerprints: one `XADD` per record)",
        "api (every worker, `XREAD` every 5 ms for pools it decides with fingerprints, else every 100 ms)",
    )
    def pool_prefix_log(self, pool_key: str) -> str:
        """The prefix records of every replica in the order they were written, so each API worker keeps its
        in-memory mirror of the index up to date without a read per decision: fields `w` (the writing worker),
        `m` (member id), `a` (when, Unix seconds), `o` (position of the first entry in the request), `e` (JSON
        list of the entries, as in `pool_prefix`)."""
        return self._pool(pool_key, "prefix-log")

    @key("hash, TTL 600 s", "api (with the prefix records)", "`llmsched status`, status page, api /metrics")
    def pool_prefix_stats(self, pool_key: str) -> str:
        """The index's own estimate of each member's prefix hit rate: `<member id>|sent` = fingerprints of the
        decisions sent to it, `<member id>|matched` = how many of them the index said it held when deciding."""
        return self._pool(pool_key, "prefix-stats")

    @key("string, TTL 30 s", "collectors", "scorer")
    def pool_scoring_pending(self, pool_key: str) -> str:
        """Set while a scoring job for the pool is queued, so bursts enqueue one job."""
        return self._pool(pool_key, "scoring-pending")

    def pool_all(self, pool_key: str) -> tuple[str, ...]:
        return tuple(
            self._pool(pool_key, s) for s in ("config", "members", "metrics", "scores", "dispatch", "scoring-pending")
        )


def key_table(keys: Keys | None = None) -> str:
    """docs/redis.md's key table, in declaration order: one row per `@key` method of `Keys`."""
    keys = keys or Keys()
    rows = ["| key | type | written by | read by | content |", "|---|---|---|---|---|"]
    for name, member in vars(Keys).items():
        fn = member.fget if isinstance(member, property) else member
        doc: KeyDoc | None = getattr(fn, "__keydoc__", None)
        if doc is None or fn is None:
            continue
        params = list(inspect.signature(fn).parameters)[1:]
        placeholders: dict[str, Any] = {p: "<pool>" if p == "pool_key" else f"<{p}>" for p in params}
        spelled = getattr(keys, name) if isinstance(member, property) else getattr(keys, name)(**placeholders)
        content = " ".join((inspect.getdoc(fn) or "").split())
        rows.append(f"| `{spelled}` | {doc.type} | {doc.writers} | {doc.readers} | {content} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(key_table())
