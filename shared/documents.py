"""The four documents that cross process boundaries through Redis, as typed dicts.

Each is written by one process and read by others (docs/redis.md names the key and the writer):

* `RoutingConfig`: a pool's routing config, published by every process started with `--config`;
* `Membership` of `MemberDoc`: BIG-IP's view of a pool, written by the poller;
* `ScrapeDoc`: one member's last scrape, one field of the pool's metrics hash, written by the scraper;
* `Snapshot` of `SnapshotMember`: the scores a decision reads, written by the scoring step.

They stay plain dicts on the wire (JSON, readable with redis-cli); these types only tell mypy and the reader
which keys each holds.
"""

from __future__ import annotations

from typing import TypedDict


class RoutingConfig(TypedDict):
    name: str
    partition: str
    engine_type: str
    pool_fallback: bool
    member_running_req_threshold: float | None
    member_waiting_queue_threshold: float | None
    stale_after: float
    herd_control: bool
    mode: str | None
    weights: dict[str, float] | None


class MemberDoc(TypedDict, total=False):
    address: str  # BIG-IP's spelling, route domain included (`10.0.0.1%2`)
    port: int
    name: str
    session: str
    state: str
    ratio: int
    priority_group: int
    ephemeral: bool
    id: str  # `address:port`
    status: str  # enabled, disabled, forced_offline or down (shared/members.py)


class Membership(TypedDict):
    fetched_at: float | None  # the last successful read of BIG-IP; None if never
    members: list[MemberDoc]
    error: str | None
    error_at: float | None


class ScrapeDoc(TypedDict, total=False):
    scraped_at: float
    status: str  # ok or error
    error: str | None
    metrics: dict[str, float]  # waiting_queue, cache_usage, running_req
    kv_cache_max: float | None
    engine: str | None
    detected_variant: str | None
    detection_status: str
    duration: float
    # hits_total, queries_total (token counters since the engine started), hit_rate (the engine's gauge),
    # capacity_tokens (its KV pool), block_size; None when the engine exposes none of them
    prefix_cache: dict[str, float | None] | None


class SnapshotMember(TypedDict):
    id: str
    key: str
    address: str
    port: int
    status: str
    ratio: int
    score: float | None  # None: cannot be picked
    slack: float | None
    metrics: dict[str, float]
    scraped_at: float | None
    scrape_status: str
    detected_variant: str | None
    prefix_counters: dict[str, float] | None  # at, hits, queries: the engine's prefix-cache counters at the scrape
    prefix_window: dict[str, float] | None  # since, at, hits, queries: their change since the previous scrape
    prefix_hit_rate_recent: float | None  # hits / queries of that window


class Snapshot(TypedDict):
    pool: str | None
    partition: str | None
    engine_type: str | None
    mode: str | None
    computed_at: float
    members_fetched_at: float | None
    members: list[SnapshotMember]
