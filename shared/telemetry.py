"""Every Prometheus metric llmsched exports, in one place: name (prefix `llmsched_`), help text, labels, buckets.

Metrics are grouped by the process that records them, one registry each, so a process's `/metrics` shows only
what it can know:

* `API`: decisions, recorded by every gunicorn worker. Exported at `GET /metrics` on the API port, merged over
  the workers with prometheus_client's multiprocess mode (api/metrics.py). Plus `API_FROM_REDIS`, gauges the
  API computes from Redis at scrape time (scores, expected shares, data ages, config version), so every
  replica and worker shows the same values and nothing can go stale in a dead worker's file.
* `POLLER`, `SCRAPER`, `SCORER` (+ `SCORER_FROM_REDIS`: queue depth and scoring latency, read from Redis at
  scrape time), and `COMMON` (config reloads, in every process that watches its config file): each served by
  `serve()` on the process's own port (`telemetry.*_port`).

The metric objects are module-level, as prometheus_client intends: they are this process's counters, written
only through the small `record_*` helpers below (and by collectors/telemetry.py), never read back by the code.
Label values are bounded: pools come from the config (a select for an unknown pool is counted under
`UNKNOWN_POOL`, not under the name the client sent), members from BIG-IP.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from loguru import logger
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.registry import Collector

PREFIX = "llmsched_"
UNKNOWN_POOL = "(unknown)"
METRICS_PORT_ENV = "LLMSCHED_METRICS_PORT"  # overrides the configured port (`llmsched up` sets it per child)
METRICS_HOST_ENV = "LLMSCHED_METRICS_HOST"  # overrides telemetry.host (`llmsched up` sets it to the API's host)

# --------------------------------------------------------------------------------------------------- API
API = CollectorRegistry(auto_describe=True)

DECISIONS = Counter(
    "llmsched_decisions",
    "Answers to POST /scheduler/select, by pool, result (member, none, fallback) and the "
    "reason class (picked, pool_fallback, or why the answer is none)",
    ("pool", "result", "reason"),
    registry=API,
)
DECISIONS_REJECTED = Counter(
    "llmsched_decisions_rejected",
    "select requests answered with an error status (bad body, too large, internal)",
    ("status",),
    registry=API,
)
DECISION_DURATION = Histogram(
    "llmsched_decision_duration_seconds",
    "Time from the select request reaching the API worker to its answer "
    "being ready (body parsing, the Redis read, filters and pick)",
    buckets=(0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05),
    registry=API,
)
DECISION_CANDIDATES = Histogram(
    "llmsched_decision_candidates",
    "Members BIG-IP offered per select request",
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128, 256, 1024),
    registry=API,
)
SELECTIONS = Counter(
    "llmsched_selections", "Decisions that picked a member, by pool and member", ("pool", "member"), registry=API
)

# --------------------------------------------------------------------------------------------------- poller
POLLER = CollectorRegistry(auto_describe=True)

POLL_DURATION = Histogram(
    "llmsched_bigip_poll_duration_seconds",
    "One poll cycle: log-in check plus every pool's members read from BIG-IP",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=POLLER,
)
POLLS = Counter("llmsched_bigip_polls", "Pool reads from BIG-IP, by pool", ("pool",), registry=POLLER)
POLL_ERRORS = Counter(
    "llmsched_bigip_poll_errors",
    "Pool reads from BIG-IP that failed, by pool and kind (auth, not_found, "
    "unavailable, unreachable, tls, protocol, http, internal); the last membership is kept",
    ("pool", "kind"),
    registry=POLLER,
)
POLL_ERROR_KINDS = ("auth", "not_found", "unavailable", "unreachable", "tls", "protocol", "http", "internal")
LOGINS = Counter(
    "llmsched_bigip_logins", "Token log-ins to BIG-IP, by result (ok, failed)", ("result",), registry=POLLER
)
POOL_MEMBERS = Gauge(
    "llmsched_pool_members",
    "Members of each pool by BIG-IP status (enabled, disabled, forced_offline, down), as of the last successful read",
    ("pool", "status"),
    registry=POLLER,
)
MEMBER_STATUSES = ("enabled", "disabled", "forced_offline", "down")
POLL_LAST_SUCCESS = Gauge(
    "llmsched_bigip_last_success_timestamp_seconds",
    "Unix time of the last successful read of each pool",
    ("pool",),
    registry=POLLER,
)


# --------------------------------------------------------------------------------------------------- scraper
@dataclass(frozen=True)
class Family:
    """A metric family computed at scrape time by a custom collector (api/metrics.py, scorer/telemetry.py,
    collectors/telemetry.py)."""

    name: str
    help: str
    labels: tuple[str, ...] = ()
    kind: str = "gauge"  # gauge | histogram


SCRAPER = CollectorRegistry(auto_describe=True)

SCRAPES = Counter("llmsched_scrapes", "Engine /metrics scrapes, by pool", ("pool",), registry=SCRAPER)
SCRAPE_ERRORS = Counter(
    "llmsched_scrape_errors",
    "Engine /metrics scrapes that failed (unreachable, timeout, HTTP error, metrics missing), by pool",
    ("pool",),
    registry=SCRAPER,
)
SCRAPE_DURATION = Histogram(
    "llmsched_scrape_duration_seconds",
    "One engine /metrics scrape (request and parsing), by pool",
    ("pool",),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=SCRAPER,
)
SCRAPE_CYCLE_DURATION = Histogram(
    "llmsched_scrape_cycle_duration_seconds",
    "One scrape cycle over every pool",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=SCRAPER,
)
SCRAPE_CYCLE_LATENESS = Histogram(
    "llmsched_scrape_cycle_lateness_seconds",
    "How long after its tick a scrape cycle started (jitter, or the previous cycle running over)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=SCRAPER,
)
SCRAPE_SKIPPED_TICKS = Counter(
    "llmsched_scrape_skipped_ticks",
    "Ticks of metrics_fetch_interval without a scrape cycle, because the cycle before ran past them",
    registry=SCRAPER,
)
SCRAPE_MEMBERS_PER_SECOND = Gauge(
    "llmsched_scrape_members_per_second",
    "Members the last cycle scraped, divided by its duration (this scraper's throughput)",
    registry=SCRAPER,
)
SCRAPE_OWNED_TARGETS = Gauge(
    "llmsched_scrape_owned_targets",
    "Scrape targets (pool + URL) this scraper owned in its last cycle (its shard)",
    registry=SCRAPER,
)
SCRAPE_SHARD_SCRAPERS = Gauge(
    "llmsched_scrape_shard_scrapers",
    "Live scrapers sharing the members in this scraper's last cycle (itself included)",
    registry=SCRAPER,
)
# Computed when /metrics is read (collectors/telemetry.py), from each owned member's last successful scrape, so
# they are true at any moment, not only right after a pool's scrape.
SCRAPE_STALE_MEMBERS = Family(
    "llmsched_scrape_stale_members",
    "Members this scraper owns whose last successful scrape is older than stale_after (or that it never scraped "
    "successfully): they cannot be picked. Sum over scrapers.",
    ("pool",),
)
SCRAPE_OLDEST_SUCCESS = Family(
    "llmsched_scrape_oldest_success_timestamp_seconds",
    "Unix time of the oldest owned member's last successful scrape (0 if a member never had one); staleness = "
    "time() - this. Min over scrapers.",
    ("pool",),
)

# --------------------------------------------------------------------------------------------------- scorer
SCORER = CollectorRegistry(auto_describe=True)

RESCORES_ENQUEUED = Counter(
    "llmsched_rescores_enqueued",
    "Scoring jobs this worker asked for (periodic, config, start), not counting requests coalesced with a queued job",
    ("reason",),
    registry=SCORER,
)

# --------------------------------------------------------------------------------------------------- every process
COMMON = CollectorRegistry(auto_describe=True)

CONFIG_RELOADS = Counter(
    "llmsched_config_reloads",
    "Changes of the config file seen by this process, by result: applied, or rejected "
    "(invalid file, or the process could not apply it; the old config stays in force)",
    ("result",),
    registry=COMMON,
)
CLOCK_SKEW = Gauge(
    "llmsched_clock_skew_seconds",
    "This host's clock minus Redis's clock (TIME), measured every 30 s at the midpoint of the round trip; "
    "freshness compares the scraper's clock with the API's, so every host must stay well within stale_after",
    registry=COMMON,
)


# --------------------------------------------------------------------------------------------------- from Redis
MEMBER_SCORE = Family(
    "llmsched_member_score",
    "Score of each member in the latest snapshot (members without a usable score are absent)",
    ("pool", "member"),
)
MEMBER_ELIGIBLE = Family(
    "llmsched_member_eligible",
    "1 when a decision offering every member could pick it "
    "(enabled on BIG-IP, fresh metrics, under the thresholds, score > 0)",
    ("pool", "member"),
)
MEMBER_SHARE = Family(
    "llmsched_member_expected_share",
    "Probability that a decision offering every member picks "
    "it: score shares after the filters and the herd-control weights",
    ("pool", "member"),
)
MEMBER_DATA_AGE = Family(
    "llmsched_member_data_age_seconds", "Seconds since the member's last scrape in the snapshot", ("pool", "member")
)
MEMBER_PREFIX_HIT_RATE = Family(
    "llmsched_member_prefix_cache_hit_ratio",
    "Prefix-cache hit rate the member's engine reports: cached / looked-up prompt tokens since it started "
    "(its counters), else its own gauge",
    ("pool", "member"),
)
MEMBER_PREFIX_HIT_RATE_RECENT = Family(
    "llmsched_member_prefix_cache_hit_ratio_recent",
    "The same hit rate over the member's last scrape interval (its counters' increase between two scrapes): it "
    "moves when routing changes",
    ("pool", "member"),
)
MEMBER_PREFIX_ESTIMATE = Family(
    "llmsched_member_prefix_index_hit_ratio",
    "The prefix index's estimate of the member's hit rate: share of the fingerprints sent to it that the index "
    "said it already held",
    ("pool", "member"),
)
POOL_SCORES_AGE = Family(
    "llmsched_pool_scores_age_seconds", "Seconds since the pool's score snapshot was written", ("pool",)
)
POOL_MEMBERS_AGE = Family(
    "llmsched_pool_membership_age_seconds",
    "Seconds since the pool's members were last read from BIG-IP successfully",
    ("pool",),
)
CONFIG_INFO = Family(
    "llmsched_config_info", "The routing config version published in Redis (value 1)", ("version", "publisher")
)
CONFIG_PUBLISHED = Family(
    "llmsched_config_published_timestamp_seconds", "Unix time the config was last published to Redis"
)
REDIS_UP = Family("llmsched_redis_up", "1 when this process could read Redis for this scrape, else 0")
BUILD_INFO = Family("llmsched_build_info", "llmsched version (value 1)", ("version",))

API_FROM_REDIS: tuple[Family, ...] = (
    MEMBER_SCORE,
    MEMBER_ELIGIBLE,
    MEMBER_SHARE,
    MEMBER_DATA_AGE,
    MEMBER_PREFIX_HIT_RATE,
    MEMBER_PREFIX_HIT_RATE_RECENT,
    MEMBER_PREFIX_ESTIMATE,
    POOL_SCORES_AGE,
    POOL_MEMBERS_AGE,
    CONFIG_INFO,
    CONFIG_PUBLISHED,
    REDIS_UP,
    BUILD_INFO,
)

QUEUE_DEPTH = Family("llmsched_scoring_queue_depth", "Scoring jobs waiting in the rq queue")
FAILED_JOBS = Family("llmsched_scoring_failed_jobs", "Scoring jobs in rq's failed-job registry")
SCORING_WORKERS = Family("llmsched_scoring_workers", "rq workers registered on the scoring queue")
SCORING_LATENCY = Family(
    "llmsched_scoring_latency_seconds",
    "Request (new data in Redis) to snapshot written, per job reason; "
    "cluster-wide totals kept in Redis by every scorer, so take max() over scorer instances, not sum()",
    ("reason",),
    "histogram",
)

SCORER_FROM_REDIS: tuple[Family, ...] = (QUEUE_DEPTH, FAILED_JOBS, SCORING_WORKERS, SCORING_LATENCY, REDIS_UP)
SCRAPER_AT_COLLECT: tuple[Family, ...] = (SCRAPE_STALE_MEMBERS, SCRAPE_OLDEST_SUCCESS)

ROLES: dict[str, tuple[CollectorRegistry, ...]] = {
    "api": (API,),
    "poller": (POLLER, COMMON),
    "scraper": (SCRAPER, COMMON),
    "scorer": (SCORER, COMMON),
}

_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
    "info": ("_info",),
    "summary": ("_sum", "_count", ""),
}


def exported_names() -> set[str]:
    """Every sample name any llmsched process can export (what dashboards and alerts may use)."""
    names: set[str] = set()
    for registry in (API, POLLER, SCRAPER, SCORER, COMMON):
        for metric in registry.collect():
            names.update(metric.name + s for s in _SUFFIXES.get(metric.type, ("",)))
    for family in API_FROM_REDIS + SCORER_FROM_REDIS + SCRAPER_AT_COLLECT:
        names.update(family.name + s for s in _SUFFIXES[family.kind])
    return names


def version() -> str:
    try:
        from importlib.metadata import version as dist_version

        return dist_version("llmsched")
    except Exception:  # a checkout that was never installed
        return "0+unknown"


# --------------------------------------------------------------------------------------------------- recording
def config_reload(result: str) -> None:
    """`applied` or `rejected`; called by llmsched.shared.reload.ConfigWatcher."""
    CONFIG_RELOADS.labels(result).inc()


def login(ok: bool) -> None:
    LOGINS.labels("ok" if ok else "failed").inc()


# --------------------------------------------------------------------------------------------------- serving
class Merged(Collector):
    """Several registries (and custom collectors) behind one endpoint."""

    def __init__(self, parts: Iterable[Collector]) -> None:
        self.parts = tuple(parts)

    def collect(self) -> Iterator:
        for part in self.parts:
            yield from part.collect()


def process_registry(process: str, extra: Iterable[Collector] = ()) -> CollectorRegistry:
    """What the `process` endpoint serves: its role's metrics, `extra` collectors, and process_* / python_*."""
    registry = CollectorRegistry()
    registry.register(Merged(ROLES[process] + tuple(extra)))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def metrics_port(process: str, telemetry_config, env: Mapping[str, str] | None = None) -> int:
    """The configured port of `process` (0 = off), unless LLMSCHED_METRICS_PORT overrides it."""
    override = ((os.environ if env is None else env).get(METRICS_PORT_ENV) or "").strip()
    if override:
        try:
            port = int(override)
        except ValueError:
            raise ValueError(f"{METRICS_PORT_ENV}={override!r} is not a port number") from None
        if not 0 <= port <= 65535:
            raise ValueError(f"{METRICS_PORT_ENV}={port} is outside 0-65535")
        return port
    return int(getattr(telemetry_config, f"{process}_port"))


def serve(process: str, telemetry_config, extra: Iterable[Collector] = (), env: dict[str, str] | None = None):
    """Start the process's /metrics endpoint (a daemon thread); the server, or None when off or not possible.

    A port that cannot be bound is logged and skipped: losing metrics must not stop a collector.
    """
    try:
        port = metrics_port(process, telemetry_config, env)
    except ValueError as exc:
        logger.error("metrics endpoint off: {}", exc)
        return None
    if port == 0:
        logger.info("metrics endpoint off (telemetry.{}_port is 0)", process)
        return None
    host = ((os.environ if env is None else env).get(METRICS_HOST_ENV) or "").strip() or telemetry_config.host
    try:
        server, _thread = start_http_server(port, addr=host, registry=process_registry(process, extra))
    except OSError as exc:
        logger.error("metrics endpoint off: cannot listen on {}:{}: {}", host, port, exc.strerror or exc)
        return None
    logger.info("metrics on http://{}:{}/metrics", host if ":" not in host else f"[{host}]", port)
    return server
