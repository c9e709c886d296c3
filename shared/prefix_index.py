"""The prefix index: which member each prompt prefix was sent to, shared by every API replica.

The iRule sends a request's chained prompt fingerprints (deploy/f5/README.md section 6). A decision that carries
them asks the index how many leading fingerprints each member holds and passes that to decide(..., prefix=...)
(shared/routing/prefix.py). The decision reads only this worker's memory: no Redis round trip.

* The mirror: each API worker keeps the index of every configured pool in memory, per member an LRU of
  fingerprint -> when it was last sent there, bounded and expiring like the Redis copy below.
* Records: after the answer is sent, the chosen member is recorded for the request's fingerprints, in this
  worker's mirror at once, and queued; the refresher (every tick, 5 ms) writes the queue in one pipeline: the
  Redis sorted sets (the shared truth) and one entry per record on the pool's capped stream (shared/keys.py
  `pool_prefix_log`).
* Other replicas: every tick the refresher reads, in one `XREAD`, what was appended to the streams of the pools
  this worker decided with fingerprints for in the last ACTIVE_S (every other configured pool every IDLE_READ_S)
  and applies it to the mirror, so a record made by another replica is seen within two ticks plus a round trip.
* Start: the first read of a pool loads its sorted sets (every member of the pool's snapshot) and the stream's
  last id in one transaction, then follows the stream from there: a worker that starts sees what the others
  recorded before it. A reader that falls more than LOG_MAX records behind on one pool loses the oldest ones
  (they only ever speed things up).

Per member one sorted set (shared/keys.py `pool_prefix`): fingerprint -> when it was last sent there.
* Bounded: trimmed after each write to the member's KV capacity in fingerprint blocks (capacity tokens / 128,
  one fingerprint covers 512 body bytes, about 128 tokens), the oldest records first; the capacity comes from the
  member's scrape document (`prefix_cache.capacity_tokens`: vLLM's num_gpu_blocks x block_size, SGLang's
  max_total_num_tokens), DEFAULT_CAPACITY_TOKENS when the engine does not say. A request's leading fingerprint is
  recorded as the newest, so a long prompt's tail is evicted before its start (as vLLM evicts). The mirror keeps
  the same bound, evicting in the order it learnt the records.
* Expiring: an entry older than TTL_S counts as absent on lookup and is removed by the next write (in Redis) or
  the next prune (in memory); the keys themselves expire TTL_S after their last write.
* Redis slow or down: decisions go on with the mirror as it is (hints from what was recorded before); records
  that cannot be written are dropped (the index only ever speeds things up).
The simulator modelled exactly this (docs/routing.md section 8.1); how it is measured: docs/benchmarks.md.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import orjson
import redis
from loguru import logger

from llmsched.shared.errors import StoreError
from llmsched.shared.keys import Keys

FINGERPRINT_TOKENS = 128  # tokens one fingerprint covers (512 bytes of JSON body at ~4 bytes per token)
DEFAULT_CAPACITY_TOKENS = 262_144  # an engine that does not publish its KV capacity: about one 80 GB GPU's
MIN_ENTRIES = 64  # one full request's fingerprints always fit
MAX_ENTRIES = 65_536  # caps what one member may hold (~6 MB of Redis) whatever its engine reports
TTL_S = 600.0
MAX_FINGERPRINTS = 64
MAX_PENDING = 20_000  # records queued between two writes; beyond, new ones are dropped
CAPACITY_RECHECK_S = 1.0  # how often a pool's capacities are re-read from its scrape documents
REFRESH_S = 1.0  # a prefix the member already held is re-recorded (its recency refreshed) at most this often
MAX_REFRESHED = 50_000  # prefixes remembered for REFRESH_S; the memory is dropped when it grows past this
LOG_MAX = 10_000  # records kept on a pool's stream (approximately: MAXLEN ~)
LOG_READ_COUNT = 2_000  # records read per pool and tick; more wait for the next tick
ACTIVE_S = 1.0  # a pool this worker looked up within this is read every tick
IDLE_READ_S = 0.1  # every other configured pool this often
PRUNE_S = 1.0  # expired entries are dropped from the mirror this often
_ORDER_STEP = 1e-5  # score step between a request's fingerprints: the leading one is the newest
_NEVER = float("-inf")
K = TypeVar("K")


def entries_for(capacity_tokens: float | None) -> int:
    """How many fingerprints a member's LRU holds, from its KV capacity in tokens (None: unknown)."""
    tokens = DEFAULT_CAPACITY_TOKENS if not capacity_tokens or capacity_tokens <= 0 else capacity_tokens
    return int(min(MAX_ENTRIES, max(MIN_ENTRIES, tokens // FINGERPRINT_TOKENS)))


def leading_run(held: Mapping[K, float], entries: Iterable[K], floor: float) -> int:
    """How many of `entries`, from the first, `held` maps to a value above `floor`: the run ends at the first one
    missing or at/below it (a member holds a prompt's prefix, not scattered blocks of it)."""
    n = 0
    for entry in entries:
        value = held.get(entry)
        if value is None or value <= floor:
            break
        n += 1
    return n


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


Held = OrderedDict[str, float]  # one member's entries -> when recorded, least recently learnt first


class PrefixIndex:
    def __init__(
        self, client: redis.Redis, keys: Keys, ttl_s: float = TTL_S, clock: Callable[[], float] = time.time
    ) -> None:
        """`client` serves the background reads and writes (the refresher's); decisions never use it."""
        self.client = client
        self.keys = keys
        self.ttl_s = ttl_s
        self.clock = clock
        self.origin = f"{os.getpid()}:{id(self):x}"  # this index's records on the streams: not applied twice
        self._pending: list[Record] = []
        self._lock = threading.Lock()
        self._mirror: dict[str, dict[str, Held]] = {}  # pool -> member id -> entries
        self._log_ids: dict[str, bytes | str] = {}  # pool -> last stream id applied (a pool here is loaded)
        self._active: dict[str, float] = {}  # pool -> last lookup (monotonic)
        self._next_idle_read = 0.0
        self._next_prune = 0.0
        self._capacity: dict[str, dict[str, int]] = {}  # pool -> member id -> entries
        self._capacity_at: dict[str, float] = {}
        self._refreshed: dict[tuple[str, str, str], float] = {}  # (pool, member, leading entry) -> last written
        self.dropped = 0

    # --- the decision path: memory only --------------------------------------------------------------------
    def lookup(self, pool_key: str, member_ids: Iterable[str] | None, entries: Sequence[str]) -> dict[str, int]:
        """member id -> leading entries it holds (members with 0 left out), from this worker's mirror; every
        member the mirror knows when `member_ids` is None."""
        self._active[pool_key] = time.monotonic()
        pool = self._mirror.get(pool_key)
        if not entries or not pool:
            return {}
        cutoff = self.clock() - self.ttl_s
        out: dict[str, int] = {}
        # A copy of the member list: under a threaded worker the refresher may add a member meanwhile.
        for member_id in tuple(pool) if member_ids is None else member_ids:
            held = pool.get(member_id)
            if not held:
                continue
            n = leading_run(held, entries, cutoff)
            if n:
                out[member_id] = n
        return out

    def record(self, pool_key: str, member_id: str, entries: Sequence[str], matched: int) -> None:
        """Learn a decision's record at once (this worker's next decision sees it) and queue it for the next
        flush(), never waited for.

        The part the member already held (`matched` leading entries) is rewritten at most every REFRESH_S per
        prefix: with sticky routing most decisions go where their prefix is, and rewriting 64 entries each time
        would only keep Redis busy. Within that second the tail may be newer than the head it follows; against
        a 600 s window that does not change what is evicted first."""
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
            self._learn(pool_key, member_id, record.entries, now, offset)

    def _learn(self, pool_key: str, member_id: str, entries: Sequence[str], at: float, offset: int) -> None:
        """Apply one record to the mirror: the tail first, so the leading entry is the last to be evicted."""
        pool = self._mirror.setdefault(pool_key, {})
        held = pool.get(member_id)
        if held is None:
            held = pool[member_id] = OrderedDict()
        for i in range(len(entries) - 1, -1, -1):
            entry, score = entries[i], at - (offset + i) * _ORDER_STEP
            if held.get(entry, _NEVER) < score:
                held[entry] = score
                held.move_to_end(entry)
        bound = self.capacity(pool_key, member_id)
        while len(held) > bound:
            held.popitem(last=False)

    # --- background: the refresher's ----------------------------------------------------------------------
    def flush(self) -> int:
        """Write the queued records in one pipeline (after re-reading capacities at most once a second per pool):
        the sorted sets, trims and stats, then each record on its pool's stream. The number of records written;
        raises StoreError when Redis failed (the records are dropped)."""
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
        # The streams last: a worker that loads the sorted sets and then follows a stream from its last id has
        # every record before that id in the sets (applying one twice changes nothing).
        logs = set()
        for r in records:
            if r.entries:
                log = self.keys.pool_prefix_log(r.pool_key)
                entries = orjson.dumps(r.entries)
                fields = {"w": self.origin, "m": r.member_id, "a": repr(r.at), "o": r.offset, "e": entries}
                pipe.xadd(log, fields, maxlen=LOG_MAX, approximate=True)
                logs.add(log)
        for log in logs:
            pipe.expire(log, ttl)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            raise StoreError(f"redis: {type(exc).__name__}: {exc}") from exc
        return len(records)

    def sync(self, pool_keys: Collection[str], member_ids: Callable[[str], Iterable[str]]) -> int:
        """Bring the mirror up to date with what every replica recorded: pools looked up within ACTIVE_S every
        call, every pool in `pool_keys` (the configured ones) every IDLE_READ_S; a pool read for the first time
        is loaded from its sorted sets (`member_ids(pool)`: the members of its snapshot). Pools no longer
        configured are forgotten. The number of records applied; raises StoreError when Redis failed."""
        now = time.monotonic()
        if now >= self._next_idle_read:
            self._next_idle_read = now + IDLE_READ_S
            due = list(pool_keys)
            for gone in [p for p in self._mirror if p not in pool_keys]:
                self._forget(gone)
        else:
            due = [p for p, at in self._active.items() if now - at < ACTIVE_S and p in pool_keys]
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_S
            self._prune()
        if not due:
            return 0
        self._refresh_capacity(due)  # before applying: the mirror keeps each member's bound
        try:
            for pool_key in due:
                if pool_key not in self._log_ids:
                    self._load(pool_key, list(member_ids(pool_key)))
            streams = {self.keys.pool_prefix_log(p): self._log_ids[p] for p in due}
            replies = self.client.xread(streams, count=LOG_READ_COUNT)
        except redis.RedisError as exc:
            raise StoreError(f"redis: {type(exc).__name__}: {exc}") from exc
        by_log = {self.keys.pool_prefix_log(p): p for p in due}
        applied = 0
        for stream, items in replies or ():
            pool_key = by_log[stream.decode() if isinstance(stream, bytes) else stream]
            for entry_id, fields in items:
                self._log_ids[pool_key] = entry_id
                applied += self._apply(pool_key, fields)
        return applied

    def _apply(self, pool_key: str, fields: Mapping[bytes, bytes]) -> int:
        try:
            if fields[b"w"].decode() == self.origin:
                return 0
            entries = orjson.loads(fields[b"e"])
            member_id, at, offset = fields[b"m"].decode(), float(fields[b"a"]), int(fields[b"o"])
        except (KeyError, ValueError, orjson.JSONDecodeError):
            logger.debug("prefix log entry of {} skipped: malformed", pool_key)
            return 0
        with self._lock:
            self._learn(pool_key, member_id, entries, at, offset)
        return 1

    def _load(self, pool_key: str, member_ids: list[str]) -> None:
        """A pool's sorted sets (unexpired entries) and its stream's last id, read in one transaction."""
        cutoff = self.clock() - self.ttl_s
        pipe = self.client.pipeline(transaction=True)
        pipe.xrevrange(self.keys.pool_prefix_log(pool_key), count=1)
        for member_id in member_ids:
            pipe.zrangebyscore(self.keys.pool_prefix(pool_key, member_id), f"({cutoff!r}", "+inf", withscores=True)
        last, *sets = pipe.execute()
        with self._lock:
            pool = self._mirror.setdefault(pool_key, {})
            for member_id, pairs in zip(member_ids, sets):
                if not pairs:
                    continue
                # Lowest score first (the order the mirror evicts in); what this worker learnt meanwhile (its own
                # decisions while the read was in flight) is newer and goes after it.
                held: Held = OrderedDict((e.decode(), float(at)) for e, at in pairs)
                for entry, at in (pool.get(member_id) or {}).items():
                    if held.get(entry, _NEVER) < at:
                        held[entry] = at
                        held.move_to_end(entry)
                while len(held) > self.capacity(pool_key, member_id):
                    held.popitem(last=False)
                pool[member_id] = held
        self._log_ids[pool_key] = last[0][0] if last else "0-0"

    def _forget(self, pool_key: str) -> None:
        with self._lock:
            self._mirror.pop(pool_key, None)
        self._log_ids.pop(pool_key, None)
        self._active.pop(pool_key, None)

    def _prune(self) -> None:
        """Drop expired entries from the mirror (oldest learnt first; what is left is still checked on lookup), and
        what is over a member's bound when its engine reported a smaller capacity since."""
        cutoff = self.clock() - self.ttl_s
        with self._lock:
            for pool_key, pool in self._mirror.items():
                for member_id in list(pool):
                    held, bound = pool[member_id], self.capacity(pool_key, member_id)
                    while held and (len(held) > bound or next(iter(held.values())) <= cutoff):
                        held.popitem(last=False)
                    if not held:
                        del pool[member_id]

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
