"""The effective configuration as typed, immutable values.

`llmsched.shared.config` parses and validates a `scheduler-config.yaml` into these dataclasses; every process reads only
these. Units are explicit in the names' docs: seconds unless a field says otherwise (the original's
`metrics_fetch_interval` is in milliseconds and stays so for compatibility).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmsched.shared.secrets import Secret

ORIGINAL_MODE_NAMES: tuple[str, ...] = (
    "s1",
    "s1_enhanced",
    "s1_adaptive",
    "s1_ratio",
    "s1_precise",
    "s1_nonlinear",
    "s1_balanced",
    "s1_adaptive_distribution",
    "s1_advanced",
    "s1_dynamic_waiting",
    "s2",
    "s2_enhanced",
    "s2_nonlinear",
    "s2_adaptive",
    "s2_advanced",
    "s2_dynamic_waiting",
)
DEFAULT_MODE = "saturation"  # llmsched's own mode (scorer/saturation.py); used when a config has no `modes`
MODE_NAMES: tuple[str, ...] = ORIGINAL_MODE_NAMES + (DEFAULT_MODE,)
ENGINE_TYPES: tuple[str, ...] = ("vllm", "sglang", "auto")


@dataclass(frozen=True)
class GlobalConfig:
    interval: float = 60.0  # s between config-file change checks (hot reload)
    api_host: str = "0.0.0.0"
    api_port: int = 8080
    log_level: str = "INFO"
    log_format: str = "text"  # text | json
    admin_token_env: str | None = None  # env var holding the token that guards the non-decision endpoints
    admin_token: Secret | None = None  # resolved from admin_token_env at load time
    api_allowed_clients: tuple[str, ...] | None = None  # addresses/CIDRs allowed to ask the API; None: any


@dataclass(frozen=True)
class F5Config:
    host: str = ""
    port: int = 443
    username: str = "admin"
    password_env: str | None = None
    password: Secret | None = None  # resolved from password_env at load time
    verify: bool = True
    ca_bundle: str | None = None
    login_provider: str = "tmos"
    auth: str = "token"  # token | basic
    timeout: float = 10.0  # s per iControl REST call


@dataclass(frozen=True)
class RedisConfig:
    url: str | None = None  # None: `llmsched up` starts a private redis-server
    namespace: str = "llmsched"
    socket_timeout: float = 0.05  # s; the collectors and the scorer use at least 2 s (off the request path)
    sentinels: tuple[tuple[str, int], ...] = ()
    master_name: str | None = None
    decision_timeout: float = 0.01  # s; the API's Redis timeout: `none` in ~10 ms beats BIG-IP's 500 ms sideband
    # Authentication and TLS of the Redis server (the URL's, or the master the Sentinels name). Secrets come from
    # the environment variables the `*_env` keys name; TLS files may be overridden by LLMSCHED_REDIS_TLS_* variables.
    username: str | None = None  # an ACL user (`username_env` resolved at load time lands here too)
    username_env: str | None = None
    password_env: str | None = None
    password: Secret | None = None  # resolved from password_env at load time
    tls: bool = False  # TLS to the master (with sentinels); with a URL, the rediss:// scheme decides
    tls_ca: str | None = None  # CA bundle that signed the server's certificate (None: the system's CAs)
    tls_cert: str | None = None  # client certificate, when the server requires one (tls-auth-clients)
    tls_key: str | None = None  # its private key
    # The same for the Sentinels themselves (Sentinel's own `requirepass`/ACL and TLS port).
    sentinel_username: str | None = None
    sentinel_username_env: str | None = None
    sentinel_password_env: str | None = None
    sentinel_password: Secret | None = None
    sentinel_tls: bool = False
    sentinel_tls_ca: str | None = None
    sentinel_tls_cert: str | None = None
    sentinel_tls_key: str | None = None


@dataclass(frozen=True)
class SchedulerConfig:
    pool_fetch_interval: float = 10.0  # s
    metrics_fetch_interval: int = 5000  # ms (original's unit)
    stale_after: float | None = None  # s; None -> 3 x metrics_fetch_interval (at least 3 s)
    scrape_concurrency: int = 64
    herd_control: bool = True  # account for decisions sent since each member's last scrape
    ha_lease_ttl: float = 3.0  # s; a collector role's lease in Redis (renewed every third of it)

    @property
    def effective_stale_after(self) -> float:
        if self.stale_after is not None:
            return self.stale_after
        return max(3.0, 3 * self.metrics_fetch_interval / 1000.0)


@dataclass(frozen=True)
class TelemetryConfig:
    """Where the collectors and the scorer serve their Prometheus /metrics (the API serves it on its own port)."""

    host: str = "0.0.0.0"
    poller_port: int = 9101  # 0 = no endpoint
    scraper_port: int = 9102
    scorer_port: int = 9103


@dataclass(frozen=True)
class ModeConfig:
    name: str = "s1"
    w_a: float = 0.5
    w_b: float = 0.5
    w_g: float = 0.0
    transition_point: float = 30.0
    steepness: float = 1.0

    def weights(self) -> dict[str, float]:
        return {
            "w_a": self.w_a,
            "w_b": self.w_b,
            "w_g": self.w_g,
            "transition_point": self.transition_point,
            "steepness": self.steepness,
        }


@dataclass(frozen=True)
class FallbackConfig:
    pool_fallback: bool = False
    member_running_req_threshold: float | None = None
    member_waiting_queue_threshold: float | None = None


@dataclass(frozen=True)
class MetricsConfig:
    schema: str = "http"  # http | https
    port: int | None = None  # None -> each member's own port
    path: str = "/metrics"
    timeout: float = 3.0  # s per scrape
    api_key: Secret | None = None  # YAML key `APIkey`; sent as a Bearer token
    metric_user: str | None = None
    metric_pwd_env: str | None = None
    metric_pwd: Secret | None = None
    verify: bool = True
    ca_bundle: str | None = None


@dataclass(frozen=True)
class PoolConfig:
    name: str
    engine_type: str
    partition: str = "Common"
    fallback: FallbackConfig = field(default_factory=FallbackConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    @property
    def key(self) -> str:
        """The original's pool identity, `<name>:<partition>`."""
        return f"{self.name}:{self.partition}"


@dataclass(frozen=True)
class EngineVariant:
    name: str  # starts with vllm or sglang
    waiting_queue: str | None = None
    cache_usage: str | None = None
    running_req: str | None = None

    @property
    def base_engine(self) -> str:
        return "sglang" if self.name.lower().startswith("sglang") else "vllm"


@dataclass(frozen=True)
class Config:
    global_: GlobalConfig = field(default_factory=GlobalConfig)
    f5: F5Config = field(default_factory=F5Config)
    redis: RedisConfig = field(default_factory=RedisConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    modes: tuple[ModeConfig, ...] = (ModeConfig(name=DEFAULT_MODE),)
    pools: tuple[PoolConfig, ...] = ()
    engines_metrics_keys: tuple[EngineVariant, ...] = ()
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    source: str = ""  # path the config was read from, for messages
    generation: int = 0  # the file's inode change time (ns) when read: a newer file never yields to an older one
    warnings: tuple[str, ...] = ()  # non-fatal findings (unsupported XInference keys, ...)

    @property
    def mode(self) -> ModeConfig | None:
        """Only the first mode counts, as in the original; None when `modes: []` (no scoring)."""
        return self.modes[0] if self.modes else None

    def pool(self, key: str) -> PoolConfig | None:
        return next((p for p in self.pools if p.key == key), None)
