"""Redis connections for every llmsched process: a plain URL or a Sentinel-managed master, from config or env.

`client_from_settings` is the one place a Redis client is built. The collectors and the scorer pass their
config (`redis.url`, or `redis.sentinels` + `redis.master_name`; `REDIS_URL` overrides both); the API passes
its environment (`REDIS_URL`, or `LLMSCHED_REDIS_SENTINELS="host:port,host:port"` + `LLMSCHED_REDIS_MASTER`,
which `llmsched api --config` sets from the config) through `target_from_env`.

Credentials and TLS (`Security`) are set apart for the Redis server and for the Sentinels: the config's
`redis.username`, `password_env`, `tls*` and `sentinel_*` keys, or in the API's environment
`LLMSCHED_REDIS_{USERNAME,PASSWORD,TLS,TLS_CA,TLS_CERT,TLS_KEY}` and the same with `LLMSCHED_SENTINEL_`.

Clients never retry on their own: a caller that must answer within milliseconds (a decision) cannot afford
redis-py's retries, and every other caller already retries on its own schedule (next cycle, next tick).

`Breaker` is the per-process circuit breaker of the decision read (see `Store.decision_inputs`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis
from loguru import logger
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from llmsched.shared.config_fields import mask_url
from llmsched.shared.config_model import RedisConfig
from llmsched.shared.errors import StoreError
from llmsched.shared.secrets import Secret

ENV_URL = "REDIS_URL"
ENV_SENTINELS = "LLMSCHED_REDIS_SENTINELS"
ENV_MASTER = "LLMSCHED_REDIS_MASTER"
DEFAULT_URL = "redis://127.0.0.1:6379/0"

ENV_REDIS_PREFIX = "LLMSCHED_REDIS_"
ENV_SENTINEL_PREFIX = "LLMSCHED_SENTINEL_"

Address = tuple[str, int]


@dataclass(frozen=True)
class Security:
    """How to authenticate to one kind of endpoint (the Redis server, or the Sentinels) and whether over TLS."""

    username: str | None = None
    password: Secret | None = None
    tls: bool = False
    tls_ca: str | None = None  # None: the system's CAs
    tls_cert: str | None = None
    tls_key: str | None = None

    def options(self, tls_flag: bool = True) -> dict[str, Any]:
        """redis-py connection options. `tls_flag` False for a URL client, whose rediss:// scheme already picks
        the TLS connection class (an `ssl` option would then be an unknown argument)."""
        out: dict[str, Any] = {}
        if self.username:
            out["username"] = self.username
        if self.password:
            out["password"] = self.password.reveal()
        if self.tls:
            out.update(ssl_ca_certs=self.tls_ca, ssl_certfile=self.tls_cert, ssl_keyfile=self.tls_key)
            if tls_flag:
                out["ssl"] = True
        return out

    def env(self, prefix: str) -> dict[str, str]:
        out = {f"{prefix}USERNAME": self.username, f"{prefix}TLS": "1" if self.tls else None}
        out.update(
            {f"{prefix}TLS_CA": self.tls_ca, f"{prefix}TLS_CERT": self.tls_cert, f"{prefix}TLS_KEY": self.tls_key}
        )
        if self.password:
            out[f"{prefix}PASSWORD"] = self.password.reveal()
        return {name: value for name, value in out.items() if value}

    @classmethod
    def from_env(cls, env: Mapping[str, str], prefix: str, tls: bool = False) -> Security:
        password = env.get(f"{prefix}PASSWORD")
        return cls(
            username=env.get(f"{prefix}USERNAME") or None,
            password=Secret(password) if password else None,
            tls=tls or env.get(f"{prefix}TLS", "").lower() in ("1", "true", "yes", "on"),
            tls_ca=env.get(f"{prefix}TLS_CA") or None,
            tls_cert=env.get(f"{prefix}TLS_CERT") or None,
            tls_key=env.get(f"{prefix}TLS_KEY") or None,
        )

    def describe(self) -> str:
        parts = [f"user {self.username!r}"] if self.username else []
        return " ".join(parts + (["TLS"] if self.tls else []))


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is: a URL, or Sentinel addresses and a master name (the URL wins when both are set), and how
    to authenticate to the server (`security`) and to the Sentinels (`sentinel_security`)."""

    url: str | None = None
    sentinels: tuple[Address, ...] = ()
    master_name: str | None = None
    security: Security = field(default_factory=Security)
    sentinel_security: Security = field(default_factory=Security)

    def __bool__(self) -> bool:
        return bool(self.url or (self.sentinels and self.master_name))

    def describe(self) -> str:
        """For logs and messages: the URL with its password masked, or the sentinels and master name."""
        how = f" ({extra})" if (extra := self.security.describe()) else ""
        if self.url:
            return mask_url(self.url) + how
        return f"sentinel master {self.master_name!r}{how} via " + ", ".join(_join(a) for a in self.sentinels)

    def env(self) -> dict[str, str]:
        """The environment variables that make `target_from_env` find this target (for the API processes)."""
        if self.url:
            return {ENV_URL: self.url, **self.security.env(ENV_REDIS_PREFIX)}
        return {
            ENV_SENTINELS: ",".join(_join(a) for a in self.sentinels),
            ENV_MASTER: self.master_name or "",
            **self.security.env(ENV_REDIS_PREFIX),
            **self.sentinel_security.env(ENV_SENTINEL_PREFIX),
        }


def _join(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_sentinels(text: str, where: str = ENV_SENTINELS) -> tuple[Address, ...]:
    """`"host:port,host:port"` (IPv6 as `[addr]:port`) -> addresses; ValueError naming `where` otherwise."""
    out = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f'{where}: {item!r} is not "host:port"')
        out.append((host, int(port)))
    if not out:
        raise ValueError(f'{where}: no sentinel address (expected "host:port,host:port")')
    return tuple(out)


def target_from_config(cfg: RedisConfig, url: str | None = None) -> RedisTarget:
    """A process's Redis from its config: `url` (a command-line flag), else `redis.url` (which `REDIS_URL` already
    overrode at load time), else `redis.sentinels` + `redis.master_name`. Empty (false) when none is set."""
    url = url or (str(cfg.url) if cfg.url else None)
    tls = cfg.tls or bool(url and url.lower().startswith("rediss://"))
    return RedisTarget(
        url=url,
        sentinels=tuple(cfg.sentinels),
        master_name=cfg.master_name,
        security=Security(cfg.username, cfg.password, tls, cfg.tls_ca, cfg.tls_cert, cfg.tls_key),
        sentinel_security=Security(
            cfg.sentinel_username,
            cfg.sentinel_password,
            cfg.sentinel_tls,
            cfg.sentinel_tls_ca,
            cfg.sentinel_tls_cert,
            cfg.sentinel_tls_key,
        ),
    )


def target_from_env(env: Mapping[str, str]) -> RedisTarget:
    """The API's Redis: `REDIS_URL`, else the sentinel variables, else a local Redis on the default port."""
    if url := env.get(ENV_URL):
        tls = url.lower().startswith("rediss://")
        return RedisTarget(url=url, security=Security.from_env(env, ENV_REDIS_PREFIX, tls))
    if sentinels := env.get(ENV_SENTINELS):
        master = env.get(ENV_MASTER)
        if not master:
            raise ValueError(f"{ENV_MASTER}: not set (the Sentinel master name; {ENV_SENTINELS} is set)")
        return RedisTarget(
            sentinels=parse_sentinels(sentinels),
            master_name=master,
            security=Security.from_env(env, ENV_REDIS_PREFIX),
            sentinel_security=Security.from_env(env, ENV_SENTINEL_PREFIX),
        )
    return RedisTarget(url=DEFAULT_URL)


def client_from_settings(
    url: str | None,
    sentinels: tuple[Address, ...] | list[Address] = (),
    master_name: str | None = None,
    socket_timeout: float | None = 0.05,
    connect_timeout: float | None = None,
    health_check_interval: int = 0,
    security: Security | None = None,
    sentinel_security: Security | None = None,
) -> redis.Redis:
    """A client for `url`, or for the master that `sentinels` name `master_name`; no retries of its own.

    `socket_timeout` None means no read timeout (rq's blocking dequeue sets its own). The sentinels are asked
    with the same timeouts, once per new connection (after a failover, the next connection finds the new master).
    """
    connect_timeout = connect_timeout if connect_timeout is not None else socket_timeout
    security = security or Security()
    options: dict[str, Any] = dict(
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        health_check_interval=health_check_interval,
        retry=Retry(NoBackoff(), 0),
    )
    if url:
        return redis.Redis.from_url(url, **options, **security.options(tls_flag=False))
    if sentinels and master_name:
        ask = {"socket_timeout": connect_timeout, "socket_connect_timeout": connect_timeout}
        ask.update((sentinel_security or Security()).options())
        sentinel = Sentinel(list(sentinels), sentinel_kwargs=ask)
        return sentinel.master_for(master_name, **options, **security.options())
    raise ValueError("no Redis: set redis.url (or REDIS_URL), or redis.sentinels and redis.master_name")


def client_for(
    target: RedisTarget,
    socket_timeout: float | None,
    connect_timeout: float | None = None,
    health_check_interval: int = 0,
) -> redis.Redis:
    return client_from_settings(
        target.url,
        target.sentinels,
        target.master_name,
        socket_timeout,
        connect_timeout,
        health_check_interval,
        target.security,
        target.sentinel_security,
    )


class RedisUnavailable(StoreError):
    """Raised without touching Redis while the breaker is open: Redis failed moments ago."""


class Breaker:
    """A per-process circuit breaker: after `threshold` failures in a row, callers fail at once for a cool-down,
    then one call probes Redis; a failed probe starts a longer cool-down (doubling from `first_cooldown` up to
    `cooldown`), a successful one closes the breaker.

    A paused or overloaded Redis costs each call a full socket timeout; with the breaker open, only one call per
    cool-down pays it and every other answers "Redis unavailable" in microseconds. The short first cool-downs let
    a blip end within tens of milliseconds; the longer ones keep a long outage cheap (one 10 ms timeout per 250
    ms and process). Two failures in a row, not one, open it: a single late reply on a busy host should not
    cost a cool-down of `none` answers. Each change of state (down, back) is logged once, never per call.
    """

    def __init__(
        self,
        cooldown: float = 0.25,
        threshold: int = 2,
        name: str = "Redis",
        first_cooldown: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cooldown = cooldown
        self.first_cooldown = min(first_cooldown, cooldown)
        self._delay = self.first_cooldown
        self.threshold = threshold
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0  # in a row, while closed
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._refused = 0

    @property
    def is_open(self) -> bool:
        return self._down_since is not None

    def call(self, fn: Callable, *args):
        """`fn(*args)`; StoreError (RedisUnavailable while open) when Redis fails or failed moments ago."""
        now = self._clock()
        with self._lock:
            if self._down_since is not None:
                if now < self._retry_at:
                    self._refused += 1
                    raise RedisUnavailable(
                        f"{self.name} unavailable (since {now - self._down_since:.1f} s; "
                        f"next try in {(self._retry_at - now) * 1000:.0f} ms)"
                    )
                self._retry_at = now + self._delay  # this caller probes; the others keep failing fast
        try:
            result = fn(*args)
        except redis.RedisError as exc:
            # Only an unreachable or silent Redis opens the breaker; an error reply (WRONGTYPE...) came from it.
            if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
                self._failed(exc)
            raise StoreError(f"redis: {type(exc).__name__}: {exc}") from exc
        if self._down_since is not None or self._failures:
            self._recovered()
        return result

    def _failed(self, exc: redis.RedisError) -> None:
        now = self._clock()
        with self._lock:
            if self._down_since is not None:
                self._delay = min(self.cooldown, self._delay * 2)
                self._retry_at = now + self._delay
                return
            self._failures += 1
            if self._failures < self.threshold:
                return
            self._down_since, self._refused, self._delay = now, 0, self.first_cooldown
            self._retry_at = now + self._delay
        logger.error(
            "{} unavailable ({}: {}): answering without it, trying again after {:g} ms, then every {:g} ms at most",
            self.name,
            type(exc).__name__,
            exc,
            self.first_cooldown * 1000,
            self.cooldown * 1000,
        )

    def _recovered(self) -> None:
        with self._lock:
            self._failures = 0
            if self._down_since is None:
                return
            down, refused = self._clock() - self._down_since, self._refused
            self._down_since = None
        logger.info("{} reachable again after {:.2f} s ({} call(s) answered without it)", self.name, down, refused)
