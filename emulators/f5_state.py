"""The whole mutable state of one BIG-IP emulator: users, auth tokens, pools, injected faults and a clock.

Exactly one `F5State` object exists per emulator and is passed to the app; nothing else holds state. Token
lifetimes follow iControl REST: `expirationMicros` is anchored to `startTime` (a PATCH sets an absolute lifetime,
not a sliding window), and time comes from `Clock`, which tests can advance instead of sleeping.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from llmsched.emulators.f5_members import LINK_HOST, Member, Pool, members_from_config

BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def _same(a: str, b: str) -> bool:
    # compare_digest on str rejects non-ASCII; bytes keep it constant-time for any password.
    return secrets.compare_digest(a.encode(), b.encode())


class Clock:
    """Wall-clock time plus an offset that the admin API can push forward (to expire tokens without waiting)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class User:
    username: str
    password: str
    local: bool = True  # Basic auth works for local users only, as on BIG-IP
    partition: str = "[All]"


@dataclass
class Token:
    token: str
    username: str
    provider: str
    address: str
    start_ms: int  # startTime in ms since the epoch
    timeout: float  # seconds, counted from start_ms
    generation: int = 1
    last_update_micros: int = 0

    @property
    def expiration_micros(self) -> int:
        # (startTime in ms + timeout x 1000) x 1000: millisecond precise, so it always ends in "000".
        return int(self.start_ms + round(self.timeout * 1000)) * 1000

    def expired(self, now: float) -> bool:
        return now * 1_000_000 >= self.expiration_micros

    def to_json(self) -> dict[str, Any]:
        start = dt.datetime.fromtimestamp(self.start_ms / 1000, tz=dt.UTC)
        timeout: float | int = int(self.timeout) if float(self.timeout).is_integer() else self.timeout
        return {
            "token": self.token,
            "name": self.token,
            "userName": self.username,
            "authProviderName": self.provider,
            "user": {"link": f"{LINK_HOST}/mgmt/shared/authz/users/{self.username}"},
            "groupReferences": [],
            "timeout": timeout,
            "startTime": start.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.start_ms % 1000:03d}" + start.strftime("%z"),
            "address": self.address,
            "partition": "[All]",
            "generation": self.generation,
            "lastUpdateMicros": self.last_update_micros,
            "expirationMicros": self.expiration_micros,
            "kind": "shared:authz:tokens:authtokenitemstate",
            "selfLink": f"{LINK_HOST}/mgmt/shared/authz/tokens/{self.token}",
        }


@dataclass
class Faults:
    fail_next: int = 0  # the next N /mgmt calls fail ...
    status: int = 500  # ... with this status: 500 (mcpd lost), 503 (GUI restarting), 404 (restjavad)
    path_prefix: str = "/mgmt"  # ... if their path starts with this
    latency: float = 0.0  # seconds added to every /mgmt call


class LoginError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class F5State:
    users: dict[str, User] = field(default_factory=lambda: {"admin": User("admin", "admin")})
    pools: dict[str, Pool] = field(default_factory=dict)  # keyed by full path
    partitions: set[str] = field(default_factory=lambda: {"Common"})
    login_providers: set[str] = field(default_factory=lambda: {"tmos"})
    token_timeout: float = 1200.0  # seconds a fresh token lives
    max_token_timeout: float = 36000.0  # PATCH above this gets 406
    max_tokens_per_user: int = 100  # "admin" is exempt, as on a real box
    version: str = "16.1.3"
    tokens: dict[str, Token] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    clock: Clock = field(default_factory=Clock)
    requests: Counter = field(default_factory=Counter)  # "METHOD /path" -> /mgmt calls served (admin: /requests)
    _op_id: int = 7_945_000

    # -- operations ------------------------------------------------------------------------------------------
    def next_op_id(self) -> int:
        self._op_id += 1
        return self._op_id

    def login(self, username: str, password: str, provider: str | None, address: str) -> Token:
        # Clients such as f5-icontrol-rest omit loginProviderName for the default provider.
        provider = provider or "tmos"
        if provider not in self.login_providers:
            raise LoginError(401, "loginProviderName is invalid.")
        user = self.users.get(username)
        if user is None or not _same(user.password, password):
            raise LoginError(401, "Authentication failed.")
        self.purge_expired()
        if (
            username != "admin"
            and sum(t.username == username for t in self.tokens.values()) >= self.max_tokens_per_user
        ):
            raise LoginError(400, f"user {username} has reached maximum active login tokens")
        now = self.clock.now()
        start_ms = int(now * 1000)
        token = Token(
            token="".join(secrets.choice(BASE32) for _ in range(26)),
            username=username,
            provider=provider,
            address=address,
            start_ms=start_ms,
            timeout=self.token_timeout,
            last_update_micros=start_ms * 1000 - 1000 + secrets.randbelow(1000),  # about 1 ms before start
        )
        self.tokens[token.token] = token
        return token

    def valid_token(self, name: str) -> Token | None:
        token = self.tokens.get(name)
        if token is None:
            return None
        if token.expired(self.clock.now()):
            del self.tokens[name]  # a real box forgets expired tokens: they then "do not exist"
            return None
        return token

    def extend_token(self, token: Token, timeout: float) -> None:
        token.timeout = timeout
        token.generation += 1
        token.last_update_micros = int(self.clock.now() * 1_000_000)

    def purge_expired(self) -> None:
        now = self.clock.now()
        for name in [n for n, t in self.tokens.items() if t.expired(now)]:
            del self.tokens[name]

    def revoke_tokens(self, username: str | None = None) -> int:
        doomed = [n for n, t in self.tokens.items() if username is None or t.username == username]
        for name in doomed:
            del self.tokens[name]
        return len(doomed)

    def check_basic(self, username: str, password: str) -> User | None:
        user = self.users.get(username)
        if user is None or not user.local or not _same(user.password, password):
            return None
        return user

    def set_password(self, username: str, password: str) -> None:
        if username in self.users:
            self.users[username].password = password
        else:
            self.users[username] = User(username, password)

    def find_pool(self, full_path: str) -> Pool | None:
        return self.pools.get(full_path)

    def put_pool(self, pool: Pool) -> Pool:
        old = self.pools.get(pool.full_path)
        if old is not None:
            pool.generation = old.generation + 1
        self.pools[pool.full_path] = pool
        self.partitions.add(pool.partition)
        return pool

    # -- construction ----------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> F5State:
        """Build from the config-file structure described in docs/emulators.md."""
        state = cls()
        if "users" in data:
            users = data["users"]
            if isinstance(users, dict):  # {"admin": "secret"} shorthand
                users = [{"username": k, "password": v} for k, v in users.items()]
            state.users = {
                u["username"]: User(u["username"], str(u["password"]), bool(u.get("local", True))) for u in users
            }
        state.token_timeout = float(data.get("token_timeout", state.token_timeout))
        state.max_token_timeout = float(data.get("max_token_timeout", state.max_token_timeout))
        state.max_tokens_per_user = int(data.get("max_tokens_per_user", state.max_tokens_per_user))
        state.version = str(data.get("version", state.version))
        state.login_providers = set(data.get("login_providers", state.login_providers))
        state.partitions |= set(data.get("partitions", []))
        for p in data.get("pools", []):
            state.put_pool(pool_from_config(p))
        return state

    @classmethod
    def load(cls, path: str) -> F5State:
        """Read a YAML (or JSON, which is YAML too) config file."""
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        if path.endswith(".json"):
            return cls.from_dict(json.loads(text))
        import yaml

        return cls.from_dict(yaml.safe_load(text) or {})


def pool_from_config(data: dict[str, Any]) -> Pool:
    partition = str(data.get("partition", "Common"))
    members: list[Member] = []
    for m in data.get("members", []):
        members.extend(members_from_config(m, partition))
    return Pool(
        name=str(data["name"]),
        partition=partition,
        sub_path=data.get("sub_path") or data.get("subPath"),
        members=members,
        monitor=str(data.get("monitor", "/Common/http")),
        load_balancing_mode=str(data.get("loadBalancingMode", "round-robin")),
        description=data.get("description"),
    )
