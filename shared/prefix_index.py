"""The prefix index: which member each prompt prefix was sent to, shared by every API replica through Redis.

The iRule sends a request's chained prompt fingerprints (deploy/f5/README.md section 6). A decision that carries
them asks the index, in ONE round trip (a server-side script), how many leading fingerprints each member holds,
and passes that to decide(..., prefix=...) (shared/routing/prefix.py). After the answer is sent, the chosen member
is recorded for all of them; records are queued and written by the API worker's refresher every tick (5 ms), so
another replica sees them within a few milliseconds and no decision waits for a write. A decision without
fingerprints never touches the index.

Per member one sorted set (shared/keys.py `pool_prefix`): fingerprint -> when it was last sent there.
* Bounded: trimmed after each write to the member's KV capacity in fingerprint blocks (capacity tokens / 128,
  one fingerprint covers 512 body bytes, about 128 tokens), the oldest records first; the capacity comes from the
  member's scrape document (`prefix_cache.capacity_tokens`: vLLM's num_gpu_blocks x block_size, SGLang's
  max_total_num_tokens), DEFAULT_CAPACITY_TOKENS when the engine does not say. A request's leading fingerprint is
  recorded as the newest, so a long prompt's tail is evicted before its start (as vLLM evicts).
* Expiring: an entry older than TTL_S counts as absent on lookup and is removed by the next write; the whole key
  expires TTL_S after its last write.
* Redis slow or down: the lookup has its own short timeout (READ_TIMEOUT_S) and circuit breaker, and a failure
  means "no hints": the decision is taken on load as without fingerprints. Records that cannot be written are
  dropped (the index only ever speeds things up).
The simulator modelled exactly this (docs/routing.md section 8.1); how it is measured: docs/benchmarks.md.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import orjson
import redis
from loguru import logger

from llmsched.shared.errors import StoreError
from llmsched.shared.keys import Keys
from llmsched.shared.redis_conn import Breaker

FINGERPRINT_TOKENS = 128  # tokens one fingerprint covers (512 bytes of JSON body at ~4 bytes per token)
DEFAULT_CAPACITY_TOKENS = 262_144  # an engine that does not publish its KV capacity: about one 80 GB GPU's
MIN_ENTRIES = 64  # one full request's fingerprints always fit
MAX_ENTRIES = 65_536  # caps what one member may hold (~6 MB of Redis) whatever its engine reports
TTL_S = 600.0
READ_TIMEOUT_S = 0.02  # a lookup that takes longer is given up: the decision goes on without hints
MAX_FINGERPRINTS = 64
MAX_PENDING = 20_000  # records queued between two writes; beyond, new ones are dropped
CAPACITY_RECHECK_S = 1.0  # how often a pool's capacities are re-read from its scrape documents
REFRESH_S = 1.0  # a prefix the member already held is re-recorded (its recency refreshed) at most this often
MAX_REFRESHED = 50_000  # prefixes remembered for REFRESH_S; the memory is dropped when it grows past this
_ORDER_STEP = 1e-5  # score step between a request's fingerprints: the leading one is the newest

# KEYS: one sorted set per member; ARGV[1]: entries recorded at or before it are expired; ARGV[2..]: the
# fingerprints in order. Returns, per key, how many leading fingerprints it holds unexpired.
_LOOKUP = """
local cutoff = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  local n = 0
  for j = 2, #ARGV do
    local s = redis.call('ZSCORE', key, ARGV[j])
    if not s or tonumber(s) <= cutoff then break end
    n = n + 1
  end
  out[i] = n
end
return out
"""


def entries_for(capacity_tokens: float | None) -> int:
    """How many fingerprints a member's LRU holds, from its KV capacity in tokens (None: unknown)."""
    tokens = DEFAULT_CAPACITY_TOKENS if not capacity_tokens or capacity_tokens <= 0 else capacity_tokens
    return int(min(MAX_ENTRIES, max(MIN_ENTRIES, tokens // FINGERPRINT_TOKENS)))


def qualified(fingerprints: Sequence[str], model: str | None) -> list[str]:
    """Index entries of a request: an engine's prefix cache is per model, so one pool serving several models keeps
    their prefixes apart."""
    return list(fingerprints) if not model else [f"{fp}@{model}" for fp in fingerprints]


@dataclass(frozen=True)
class Record:
    pool_key: str
    member_id: str
    entries: tuple[str, ...]  # qualified fingerprints to write, in request order
    matched: int  # leading fingerprints the index said the member held when deciding
    at: float
    sent: int  # fingerprints the request carried (the estimate counts them all)
    offset: int = 0  # position of entries[0] in the request


def with_timeout(client: redis.Redis, seconds: float) -> redis.Redis:
    """A client to the same plain Redis URL with another read timeout; any other client (Sentinel) is returned as
    is: its pool cannot be rebuilt from its settings, so build the reader with redis_conn.client_for instead."""
    pool = client.connection_pool
    if type(pool) is not redis.ConnectionPool:
        return client
    kwargs = {**pool.connection_kwargs, "socket_timeout": seconds}
    return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs))


class PrefixIndex:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        reader: redis.Redis | None = None,
        ttl_s: float = TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`client` writes (background); `reader` (default: `client` with READ_TIMEOUT_S) answers lookups."""
        self.client = client
        self.reader = reader if reader is not None else with_timeout(client, READ_TIMEOUT_S)
        self.keys = keys
        self.ttl_s = ttl_s
        self.clock = clock
        self.breaker = Breaker(name="Redis (prefix index)")
        self._pending: list[Record] = []
        self._lock = threading.Lock()
        self._capacity: dict[str, dict[str, int]] = {}  # pool -> member id -> entries
        self._capacity_at: dict[str, float] = {}
        self._refreshed: dict[tuple[str, str, str], float] = {}  # (pool, member, leading entry) -> last written
        self.dropped = 0

    # --- the decision path ---------------------------------------------------------------------------------
    def lookup(self, pool_key: str, member_ids: Sequence[str], entries: Sequence[str]) -> dict[str, int]:
        """member id -> leading entries it holds (members with 0 left out), in one round trip; {} when Redis
        fails or is slow (the decision then goes on without hints)."""
        if not entries or not member_ids:
            return {}
        keys = [self.keys.pool_prefix(pool_key, m) for m in member_ids]
        cutoff = self.clock() - self.ttl_s
        try:
            counts = self.breaker.call(self.reader.eval, _LOOKUP, len(keys), *keys, repr(cutoff), *entries)
        except StoreError as exc:
            logger.debug("prefix index not read: {}", exc)
            return {}
        return {m: int(n) for m, n in zip(member_ids, counts) if n}

    def record(self, pool_key: str, member_id: str, entries: Sequence[str], matched: int) -> None:
        """Queue a decision's record; written by the next flush(), never waited for.

        The part the member already held (`matched` leading entries) is rewritten at most every REFRESH_S per
        prefix: with sticky routing most decisions go where their prefix is, and rewriting 64 entries each time
        would only keep Redis busy (a lookup waits behind every write). Within that second the tail may be newer
        than the head it follows; against a 600 s window that does not change what is evicted first."""
        if not entries:
            return
        now = self.clock()
        with self._lock:
            if len(self._pending) >= MAX_PENDING:
                self.dropped += 1
                return
            seen = (pool_key, member_id, entries[0])
            offset = 0
            if matched and now - self._refreshed.get(seen, -REFRESH_S) < REFRESH_S:
                offset = min(matched, len(entries))  # only what is new for it
            else:
                if len(self._refreshed) >= MAX_REFRESHED:
                    self._refreshed = {}
                self._refreshed[seen] = now
            record = Record(pool_key, member_id, tuple(entries[offset:]), matched, now, len(entries), offset)
            self._pending.append(record)

    # --- background ----------------------------------------------------------------------------------------
    def flush(self) -> int:
        """Write the queued records in one pipeline (after re-reading capacities at most once a second per pool);
        the number of records written. Raises StoreError when Redis failed (the records are dropped)."""
        with self._lock:
            records, self._pending = self._pending, []
        if not records:
            return 0
        self._refresh_capacity({r.pool_key for r in records})
        scores: dict[tuple[str, str], dict[str | bytes, bytes | float | int | str]] = {}  # redis-py's zadd type
        stats: dict[str, dict[str, int]] = {}
        for r in records:
            mapping = scores.setdefault((r.pool_key, r.member_id), {})
            for i, entry in enumerate(r.entries, r.offset):
                mapping[entry] = r.at - i * _ORDER_STEP
            counts = stats.setdefault(r.pool_key, {})
            counts[f"{r.member_id}|sent"] = counts.get(f"{r.member_id}|sent", 0) + r.sent
            counts[f"{r.member_id}|matched"] = counts.get(f"{r.member_id}|matched", 0) + r.matched
        cutoff = self.clock() - self.ttl_s
        ttl = max(1, int(self.ttl_s + 0.999))
        pipe = self.client.pipeline(transaction=False)
        for (pool_key, member_id), mapping in scores.items():
            if not mapping:
                continue
            key = self.keys.pool_prefix(pool_key, member_id)
            pipe.zadd(key, mapping)
            pipe.zremrangebyscore(key, "-inf", cutoff)
            pipe.zremrangebyrank(key, 0, -self.capacity(pool_key, member_id) - 1)
            pipe.expire(key, ttl)
        for pool_key, counts in stats.items():
            key = self.keys.pool_prefix_stats(pool_key)
            for field, n in counts.items():
                pipe.hincrby(key, field, n)
            pipe.expire(key, ttl)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            raise StoreError(f"redis: {type(exc).__name__}: {exc}") from exc
        return len(records)

    def capacity(self, pool_key: str, member_id: str) -> int:
        """Entries the member's LRU holds (from its last scrape document; the default when unknown)."""
        return self._capacity.get(pool_key, {}).get(member_id) or entries_for(None)

    def _refresh_capacity(self, pool_keys: Iterable[str]) -> None:
        now = time.monotonic()
        due = [p for p in pool_keys if now >= self._capacity_at.get(p, 0.0)]
        if not due:
            return
        for p in due:
            self._capacity_at[p] = now + CAPACITY_RECHECK_S
        pipe = self.client.pipeline(transaction=False)
        for p in due:
            pipe.hgetall(self.keys.pool_metrics(p))
        try:
            replies = pipe.execute()
        except redis.RedisError as exc:
            logger.debug("member capacities not read: {}", exc)
            return
        for p, docs in zip(due, replies):
            self._capacity[p] = {f.decode(): entries_for(capacity_tokens(raw)) for f, raw in docs.items()}

    def stats(self, pool_keys: Sequence[str]) -> dict[str, dict[str, dict[str, int]]]:
        """pool -> member id -> {sent, matched} (the index's estimate of its hit rate), in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for p in pool_keys:
            pipe.hgetall(self.keys.pool_prefix_stats(p))
        try:
            replies = pipe.execute() if pool_keys else []
        except redis.RedisError as exc:
            raise StoreError(f"redis: {type(exc).__name__}: {exc}") from exc
        return {p: parse_stats(raw) for p, raw in zip(pool_keys, replies)}


def parse_stats(raw: Mapping[bytes, bytes]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for field, value in raw.items():
        member_id, _, what = field.decode().rpartition("|")
        if what in ("sent", "matched"):
            out.setdefault(member_id, {"sent": 0, "matched": 0})[what] = int(value)
    return out


def capacity_tokens(raw_doc: bytes | str | None) -> float | None:
    """The KV capacity in tokens a scrape document reports (`prefix_cache.capacity_tokens`), None if none."""
    try:
        doc = orjson.loads(raw_doc) if raw_doc else None
    except orjson.JSONDecodeError:
        return None
    prefix = doc.get("prefix_cache") if isinstance(doc, dict) else None
    value = prefix.get("capacity_tokens") if isinstance(prefix, dict) else None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None
