"""Reading and writing llmsched's state in Redis: every process goes through this module.

Values are JSON strings or hashes of JSON strings, readable with redis-cli; nothing is pickled. Each write that
readers must see whole (a pool's membership, a pool's score snapshot) is one SET of one key, so no reader ever sees
half of it. Each write the API's in-memory routing data depends on (a published config, a score snapshot) is
announced on the `changes` channel in the same pipeline, so API workers reload it at once (`routing_data`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
import redis

from llmsched.shared.documents import RoutingConfig
from llmsched.shared.errors import StoreError
from llmsched.shared.keys import Keys
from llmsched.shared.redis_conn import Breaker, client_from_settings


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def loads(raw: bytes | str | None) -> Any:
    return None if raw is None else orjson.loads(raw)


def connect(url: str, socket_timeout: float = 0.05, connect_timeout: float | None = None) -> redis.Redis:
    """A client for a plain URL with short timeouts (see shared/redis_conn.py for Sentinel and the environment)."""
    return client_from_settings(url, socket_timeout=socket_timeout, connect_timeout=connect_timeout)


class Store:
    """llmsched's state in one Redis (or Sentinel-managed master), under one namespace.

    With a `breaker` (the API's), the decision read and the dispatch count go through it: while Redis is down
    they fail at once instead of each waiting for a socket timeout.
    """

    def __init__(self, client: redis.Redis, namespace: str = "llmsched", breaker: Breaker | None = None) -> None:
        self.client = client
        self.keys = Keys(namespace)
        self.breaker = breaker
        # One EVALSHA instead of a three-command pipeline: less work for redis-py and Redis on the hot path.
        self._read_decision = client.register_script(_READ_DECISION)
        self._exchange = client.register_script(_EXCHANGE_DISPATCH)

    # --- health ------------------------------------------------------------------------------------------
    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    # --- configuration ------------------------------------------------------------------------------------
    def publish_pools(
        self, pool_docs: Mapping[str, RoutingConfig], version: str, source: str, publisher: str, generation: int = 0
    ) -> bool:
        """Make `pool_docs` (pool key -> routing config) the configured pools; forget pools no longer listed.
        Nothing is written, and False returned, when Redis holds a config of a newer `generation` (a newer file):
        a process still on an older file never overwrites it. Atomic (WATCH/MULTI) against a concurrent publisher."""
        k = self.keys

        def write(pipe) -> bool:
            held = pipe.hget(k.config_meta, "generation")
            if held is not None and int(held) > generation:
                return False
            old = set(loads(pipe.get(k.pools)) or [])
            pipe.multi()
            for pool_key, doc in pool_docs.items():
                pipe.set(k.pool_config(pool_key), dumps(doc))
            for gone in old - set(pool_docs):
                pipe.delete(*k.pool_all(gone))
            pipe.set(k.pools, dumps(list(pool_docs)))
            meta = {"version": version, "published_at": repr(time.time()), "source": source, "publisher": publisher}
            pipe.hset(k.config_meta, mapping={**meta, "generation": str(generation)})
            pipe.publish(k.changes, "*")
            return True

        return bool(self._call(self.client.transaction, write, k.config_meta, k.pools, value_from_callable=True))

    def has_config(self) -> bool:
        """Whether a config is published: the cheap check that Redis still holds llmsched's data (watchdog)."""
        return bool(self._call(self.client.hexists, self.keys.config_meta, "version"))

    def config_version(self) -> str | None:
        raw = self._call(self.client.hget, self.keys.config_meta, "version")
        return raw.decode() if raw else None

    def pool_keys(self) -> list[str]:
        return loads(self._call(self.client.get, self.keys.pools)) or []

    def _pool_list(self) -> list[str]:
        return loads(self.client.get(self.keys.pools)) or []

    def pool_config(self, pool_key: str) -> dict | None:
        return loads(self._call(self.client.get, self.keys.pool_config(pool_key)))

    # --- membership (poller) ------------------------------------------------------------------------------
    def set_members(self, pool_key: str, doc: dict) -> None:
        self._call(self.client.set, self.keys.pool_members(pool_key), dumps(doc))

    def members(self, pool_key: str) -> dict | None:
        return loads(self._call(self.client.get, self.keys.pool_members(pool_key)))

    # --- metrics (scraper) --------------------------------------------------------------------------------
    def set_metrics(self, pool_key: str, by_member: Mapping[str, dict], keep: Iterable[str] | None = None) -> None:
        """Record a scrape's results; with `keep`, drop metrics of members no longer in the pool."""
        key = self.keys.pool_metrics(pool_key)
        pipe = self.client.pipeline(transaction=True)
        if by_member:
            pipe.hset(key, mapping={mid: dumps(doc) for mid, doc in by_member.items()})
        if keep is not None:
            pipe.eval(_DROP_OTHER_FIELDS, 1, key, *keep)
        # A fresh scrape resets herd-control counters of the members it measured.
        if by_member:
            pipe.hdel(self.keys.pool_dispatch(pool_key), *by_member)
        self._execute(pipe)

    def metrics(self, pool_key: str) -> dict[str, dict]:
        raw = self._call(self.client.hgetall, self.keys.pool_metrics(pool_key))
        return {f.decode(): loads(v) for f, v in raw.items()}

    def scoring_inputs(self, pool_key: str) -> tuple[dict | None, dict | None, dict[str, dict]]:
        """(routing config, membership, metrics by member) of one pool, in one round trip."""
        k = self.keys
        pipe = self.client.pipeline(transaction=False)
        pipe.get(k.pool_config(pool_key))
        pipe.get(k.pool_members(pool_key))
        pipe.hgetall(k.pool_metrics(pool_key))
        cfg, members, metrics = self._execute(pipe)
        return loads(cfg), loads(members), {f.decode(): loads(v) for f, v in metrics.items()}

    # --- scores (scoring step) ----------------------------------------------------------------------------
    def set_scores(self, pool_key: str, snapshot: dict) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self.keys.pool_scores(pool_key), dumps(snapshot))
        pipe.publish(self.keys.changes, pool_key)
        self._execute(pipe)

    def scores(self, pool_key: str) -> dict | None:
        return loads(self._call(self.client.get, self.keys.pool_scores(pool_key)))

    # --- decisions (api) ----------------------------------------------------------------------------------
    def decision_inputs(self, pool_key: str) -> tuple[dict | None, dict | None, dict[str, int]]:
        """(routing config, score snapshot, dispatch counters) of one pool: one round trip, one hash slot."""
        k = self.keys
        cfg, scores, dispatch = self._guarded(
            self._read_decision, [k.pool_config(pool_key), k.pool_scores(pool_key), k.pool_dispatch(pool_key)]
        )
        counts = {dispatch[i].decode(): int(dispatch[i + 1]) for i in range(0, len(dispatch), 2)}
        return loads(cfg or None), loads(scores or None), counts

    def routing_data(self, pool_keys: list[str] | None = None) -> dict[str, tuple[dict | None, dict | None]]:
        """(routing config, score snapshot) of the given pools, or of every configured pool: what an API worker
        keeps in memory. One round trip for given pools; two (the pool list first) for all."""
        keys = self._guarded(self._pool_list) if pool_keys is None else pool_keys
        if not keys:
            return {}
        k = self.keys
        pipe = self.client.pipeline(transaction=False)
        for pool_key in keys:
            pipe.get(k.pool_config(pool_key))
            pipe.get(k.pool_scores(pool_key))
        raw = self._guarded(pipe.execute)
        return {key: (loads(raw[2 * i]), loads(raw[2 * i + 1])) for i, key in enumerate(keys)}

    def exchange_dispatch(
        self, sent: Mapping[str, Mapping[str, int]], expire_s: Mapping[str, int], read: Iterable[str]
    ) -> dict[str, dict[str, int]]:
        """Add this worker's herd-control counts (pool -> member id -> decisions since the last exchange) and read
        every replica's totals of the pools in `read`, in one round trip. A pool's hash expires `expire_s[pool]`
        seconds after its last count (a stopped scraper's counts must not live on)."""
        k = self.keys
        wanted = list(read)
        if not sent and len(wanted) == 1:  # the common idle case: one plain command, no pipeline (4x cheaper)
            raw = self._guarded(self.client.hgetall, k.pool_dispatch(wanted[0]))
            return {wanted[0]: {f.decode(): int(v) for f, v in raw.items()}}
        # One script call per pool (its keys share one hash slot, so this is legal on a cluster): the counts, the
        # expiry and the read back as one command, which costs the client far less than a pipeline of
        # HINCRBYs + EXPIRE + HGETALL. Several pools: their calls in one pipeline (still one round trip).
        reading = set(wanted)
        calls = []
        for pool_key in dict.fromkeys([*sent, *wanted]):
            args: list[str | int] = [expire_s.get(pool_key, 0), 1 if pool_key in reading else 0]
            for member_id, n in (sent.get(pool_key) or {}).items():
                args += [member_id, n]
            calls.append((pool_key, [k.pool_dispatch(pool_key)], args))
        if len(calls) == 1:
            replies = [self._guarded(self._exchange, calls[0][1], calls[0][2])]
        else:
            pipe = self.client.pipeline(transaction=False)
            for _, keys, args in calls:
                self._exchange(keys, args, client=pipe)
            replies = self._guarded(pipe.execute)
        out = {}
        for (pool_key, _, _), raw in zip(calls, replies):
            if pool_key in reading:
                out[pool_key] = {raw[i].decode(): int(raw[i + 1]) for i in range(0, len(raw), 2)}
        return out

    def memberships(self, pool_keys: list[str]) -> dict[str, dict | None]:
        """Each pool's membership document (what the poller last read from BIG-IP), in one round trip."""
        if not pool_keys:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for pool_key in pool_keys:
            pipe.get(self.keys.pool_members(pool_key))
        raw = self._guarded(pipe.execute)
        return {key: loads(value) for key, value in zip(pool_keys, raw)}

    def status_inputs(self, pool_keys: list[str]) -> list[tuple[dict | None, dict | None, dict | None]]:
        """(routing config, score snapshot, membership) for each pool, in one round trip."""
        k = self.keys
        pipe = self.client.pipeline(transaction=False)
        for pool_key in pool_keys:
            pipe.get(k.pool_config(pool_key))
            pipe.get(k.pool_scores(pool_key))
            pipe.get(k.pool_members(pool_key))
        raw = self._execute(pipe)
        return [(loads(raw[i]), loads(raw[i + 1]), loads(raw[i + 2])) for i in range(0, len(raw), 3)]

    # --- plumbing -----------------------------------------------------------------------------------------
    def _guarded(self, fn, *args):
        return self.breaker.call(fn, *args) if self.breaker is not None else self._call(fn, *args)

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except redis.RedisError as exc:
            raise StoreError(f"redis: {type(exc).__name__}: {exc}") from exc

    def _execute(self, pipe) -> list:
        try:
            return pipe.execute()
        except redis.RedisError as exc:
            raise StoreError(f"redis: {type(exc).__name__}: {exc}") from exc


# GET config, GET scores, HGETALL dispatch of one pool (one hash slot); a missing string comes back as false -> 0.
_READ_DECISION = """
return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2]), redis.call('HGETALL', KEYS[3])}
"""

# KEYS[1]: a pool's dispatch hash; ARGV[1]: its expiry in seconds (0: none), ARGV[2]: 1 to read it back, ARGV[3..]:
# member id, decisions pairs to add. The expiry is set only with counts (as the scraper's reset leaves it).
_EXCHANGE_DISPATCH = """
for i = 3, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
if #ARGV > 2 and tonumber(ARGV[1]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if ARGV[2] == '1' then return redis.call('HGETALL', KEYS[1]) end
return {}
"""

# HDEL every field of KEYS[1] not listed in ARGV (members that left the pool); one call, no race with HSET.
_DROP_OTHER_FIELDS = """
local keep = {}
for _, f in ipairs(ARGV) do keep[f] = true end
local gone = {}
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if not keep[f] then table.insert(gone, f) end
end
if #gone > 0 then redis.call('HDEL', KEYS[1], unpack(gone)) end
return #gone
"""
