"""What an API worker decides from, kept in memory so that no decision waits for Redis.

* Routing data: every configured pool's routing config and score snapshot. The scorer and the config publisher
  announce each write on the `changes` channel (shared/store.py); a subscriber here marks the pool dirty and the
  refresher reloads it on its next tick. A full reload every `recheck_s` (and after every (re)subscription) is the
  bounded fallback for a lost message (a reconnect, a failover).
* Herd control: each decision is counted here. Every tick (`tick_s`, 5 ms) the refresher adds the worker's
  counts to Redis and reads every replica's totals back in the same round trip, so another replica sees a
  decision within two ticks. A decision uses the totals plus what this worker counted since.
* Prefix index (shared/prefix_index.py): a decision with fingerprints reads the worker's in-memory mirror of
  it; its records are queued and written by the refresher every tick, which also reads the other replicas'
  records into the mirror.
* Redis unavailable: the last data stays. decide() drops each member whose metrics are older than the pool's
  `stale_after` by their own `scraped_at`, so decisions go on from the last snapshot until it is stale, then
  answer `none`. Counts that cannot be sent are dropped (the next scrape resets them anyway).

The subscriber and the refresher are threads; under gunicorn's gevent worker (the default) they are greenlets.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Sequence

import redis
from loguru import logger

from llmsched.shared.errors import StoreError
from llmsched.shared.prefix_index import PrefixIndex
from llmsched.shared.routing.decide import Eligible, eligible, fresh_until
from llmsched.shared.store import Store

TICK_S = 0.005  # the routing simulator: visibility beyond ~5 ms on average costs herd control p99 (docs/benchmarks.md)
RECHECK_S = 1.0
ACTIVE_S = 0.1  # a worker that decided within this reads the totals every tick
IDLE_READ_S = 0.1  # otherwise this often
RETRY_S = 0.1  # after a failed full reload or a lost subscription
MAX_UNKNOWN = 1000  # pools read on demand between two full reloads
MAX_CACHED_LISTS = 16  # candidate lists kept per pool (BIG-IP sends one while the pool's up members are unchanged)
MAX_CACHED_CANDIDATES = 1024  # a longer list is filtered each time (bounded by the pool: decide.candidate_index)

Inputs = tuple[dict | None, dict | None, dict[str, int] | None]


class RoutingState:
    def __init__(
        self,
        store: Store,
        tick_s: float = TICK_S,
        recheck_s: float = RECHECK_S,
        prefix: PrefixIndex | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        """`on_tick`: also run by the refresher every tick (the worker's metrics flush)."""
        self.store = store
        self.on_tick = on_tick
        self.prefix = prefix if prefix is not None else PrefixIndex(store.client, store.keys)
        self.tick_s = tick_s
        self.recheck_s = recheck_s
        self._pools: dict[str, tuple[dict | None, dict | None]] = {}
        self._totals: dict[str, dict[str, int]] = {}  # all replicas' counts, as last read
        self._pending: dict[str, dict[str, int]] = {}  # counted here, not sent yet
        self._inflight: dict[str, dict[str, int]] = {}  # sent, reply not read yet
        self._expire: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._asked: dict[str, float] = {}  # pool key -> when it may be read on demand again
        # pool key -> (snapshot, config, {candidates: (eligible, valid until)}): see eligible()
        self._eligible: dict[str, tuple[dict, dict, dict[tuple[str, ...], tuple[Eligible, float]]]] = {}
        self._reload_all = True
        self._next_recheck = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by the subscriber: a change is waiting, do not wait for the tick
        self._threads: list[threading.Thread] = []
        self._failing: set[str] = set()  # background steps failing now (each logged once per outage)
        self._deciding_at = 0.0  # last herd-control decision (monotonic)
        self._next_idle_read = 0.0
        self.loaded_at: float | None = None  # time.time() of the last full reload that succeeded
        self.memberships: dict[str, dict | None] = {}  # as of that reload: what /health reports of BIG-IP

    # --- the hot path: memory only --------------------------------------------------------------------------
    def inputs(self, pool_key: str) -> Inputs:
        """(routing config, score snapshot, herd counts or None) of one pool. A pool this worker knows no
        snapshot of is read from Redis, at most once a tick (a pool published a moment ago, before its
        announcement arrived)."""
        entry = self._pools.get(pool_key)
        if entry is None or entry[1] is None:
            entry = self._load_unknown(pool_key, entry)
        config, snapshot = entry
        if config is None or not config.get("herd_control"):
            return config, snapshot, None
        self._deciding_at = time.monotonic()
        return config, snapshot, self._counts(pool_key)

    def health_inputs(self) -> list[tuple[str, dict | None, dict | None, dict | None]]:
        """(pool key, routing config, score snapshot, membership) of every configured pool, in config order, as
        this worker holds them: what /health reports, without a Redis read."""
        pools = self._pools
        return [(key, config, snapshot, self.memberships.get(key)) for key, (config, snapshot) in pools.items()]

    def eligible(
        self, pool_key: str, config: dict | None, snapshot: dict | None, candidates: Sequence[str], now: float
    ) -> Eligible:
        """eligible(config, snapshot, candidates, now), kept per pool for the snapshot and config it was computed
        from and each candidate list BIG-IP sends (the same list on every request while the pool is unchanged),
        until a member it counted as fresh turns stale (decide.fresh_until)."""
        if config is None or snapshot is None or len(candidates) > MAX_CACHED_CANDIDATES:
            return eligible(config, snapshot, candidates, now)
        cached = self._eligible.get(pool_key)
        if cached is None or cached[0] is not snapshot or cached[1] is not config:
            cached = self._eligible[pool_key] = (snapshot, config, {})
        lists = cached[2]
        key = tuple(candidates)
        hit = lists.get(key)
        if hit is not None and now < hit[1]:
            return hit[0]
        result = eligible(config, snapshot, candidates, now)
        if len(lists) >= MAX_CACHED_LISTS:
            lists.clear()
        lists[key] = (result, fresh_until(config, snapshot, now))
        return result

    def count(self, pool_key: str, member_id: str, expire_s: int) -> None:
        """One decision sent to `member_id`; sent to Redis on the next tick."""
        with self._lock:
            counts = self._pending.setdefault(pool_key, {})
            counts[member_id] = counts.get(member_id, 0) + 1
            self._expire[pool_key] = expire_s

    def _counts(self, pool_key: str) -> dict[str, int]:
        totals = self._totals.get(pool_key) or {}
        mine = [d[pool_key] for d in (self._inflight, self._pending) if pool_key in d]
        if not mine:
            return totals
        merged = dict(totals)
        for counts in mine:
            for member_id, n in counts.items():
                merged[member_id] = merged.get(member_id, 0) + n
        return merged

    def _load_unknown(
        self, pool_key: str, known: tuple[dict | None, dict | None] | None
    ) -> tuple[dict | None, dict | None]:
        """Read one pool this worker has not seen (or seen configured but not scored yet), at most once a tick
        per pool and for a bounded number of pools: a client cannot turn decisions back into Redis reads."""
        now = time.monotonic()
        if now < self._asked.get(pool_key, 0.0) or len(self._asked) >= MAX_UNKNOWN:
            return known or (None, None)
        self._asked[pool_key] = now + self.tick_s
        try:
            entry = self.store.routing_data([pool_key])[pool_key]
        except StoreError:
            return known or (None, None)
        self._pools = {**self._pools, pool_key: entry}
        return entry

    # --- background: push, fallback check, herd counts -------------------------------------------------------
    def start(self) -> RoutingState:
        """Load everything once, then follow changes in the background. The threads hold the state weakly and
        end when it is dropped (an app built for a test) or stopped."""
        self.reload()
        ref = weakref.ref(self)
        for target, name in ((_listen, "llmsched-changes"), (_refresh, "llmsched-refresh")):
            thread = threading.Thread(target=target, args=(ref, self._stop, self._wake), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=2.0)

    def reload(self, pool_keys: list[str] | None = None) -> bool:
        """Read the routing data of `pool_keys` (every configured pool when None); False when Redis failed."""
        try:
            data = self.store.routing_data(pool_keys)
        except StoreError as exc:
            self._failed("routing data not reloaded", exc)
            return False
        self._worked("routing data not reloaded")
        if pool_keys is None:
            try:
                memberships = self.store.memberships(list(data))
            except StoreError as exc:
                self._failed("memberships not reloaded", exc)
                return False
            self._worked("memberships not reloaded")
            self._pools = data
            self.memberships = memberships
            self._asked = {}
            self._eligible = {k: v for k, v in self._eligible.items() if k in data}
            self.loaded_at = time.time()
        else:
            self._pools = {**self._pools, **data}
        return True

    def _failed(self, what: str, exc: Exception) -> None:
        """Log a background step's failure once per outage, not every tick (200 lines a second per worker)."""
        if what not in self._failing:
            self._failing.add(what)
            logger.debug("{}: {} (logged once until it works again)", what, exc)

    def _worked(self, what: str) -> None:
        if what in self._failing:
            self._failing.discard(what)
            logger.debug("{}: works again", what)

    def tick(self) -> None:
        """One refresher step: reload what changed (or everything when due), then exchange herd counts."""
        if time.monotonic() >= self._next_recheck:
            self._reload_all = True
        self.apply_changes()
        self._exchange()
        try:
            self.prefix.flush()
            self._worked("prefix records not written")
        except StoreError as exc:
            self._failed("prefix records not written", exc)
        try:
            self.prefix.sync(self._pools.keys(), self._member_ids)
            self._worked("prefix records of other replicas not read")
        except StoreError as exc:
            self._failed("prefix records of other replicas not read", exc)
        if self.on_tick is not None:
            self.on_tick()

    def _member_ids(self, pool_key: str) -> list[str]:
        snapshot = (self._pools.get(pool_key) or (None, None))[1] or {}
        return [m["id"] for m in snapshot.get("members", ()) if "id" in m]

    def apply_changes(self) -> None:
        """Reload what the changes channel announced (everything after a config publish, a resubscription or
        when the periodic full reload is due)."""
        if self._reload_all:
            self._reload_all, self._dirty = False, set()
            # A failure is retried after RETRY_S, not every tick: Redis coming back is noticed within that.
            ok = self.reload()
            self._next_recheck = time.monotonic() + (self.recheck_s if ok else min(self.recheck_s, RETRY_S))
        elif self._dirty:
            dirty, self._dirty = list(self._dirty), set()
            self.reload(dirty)

    def _exchange(self) -> None:
        with self._lock:
            sent, self._pending = self._pending, {}
            expire = {pool: self._expire[pool] for pool in sent}
            self._inflight = sent
        now = time.monotonic()
        if not sent and now - self._deciding_at > ACTIVE_S:
            # No decision of ours lately: read the totals every IDLE_READ_S only (an idle worker would otherwise
            # spend about 7 % of a core on reads nobody uses); the first decision after a pause may see them
            # that old.
            if now < self._next_idle_read:
                return
            self._next_idle_read = now + IDLE_READ_S
        herd = [key for key, (config, _) in self._pools.items() if config and config.get("herd_control")]
        try:
            totals = self.store.exchange_dispatch(sent, expire, herd) if (sent or herd) else {}
            self._worked("herd counts not exchanged")
        except StoreError as exc:
            self._failed("herd counts not exchanged", exc)
            totals = self._totals
        with self._lock:
            self._totals, self._inflight = totals, {}

    def on_change(self, name: str) -> None:
        """A message on the changes channel: a pool key, or `*` (a config was published: reload everything)."""
        if name == "*":
            self._reload_all = True
        else:
            self._dirty.add(name)
        self._wake.set()


def _refresh(ref: weakref.ref[RoutingState], stop: threading.Event, wake: threading.Event) -> None:
    tick_s = ref().tick_s  # type: ignore[union-attr]
    next_tick = time.monotonic() + tick_s
    while True:
        # A change announced on the channel is read at once, not at the next tick: a decision must not go on
        # from a snapshot the scorer has replaced (an engine that went down). The refresher stays the only writer.
        woken = wake.wait(max(0.0, next_tick - time.monotonic()))
        wake.clear()
        if stop.is_set():
            return
        state = ref()
        if state is None:
            return
        try:
            if woken and time.monotonic() < next_tick:
                state.apply_changes()
            else:
                next_tick = time.monotonic() + tick_s
                state.tick()
        except Exception as exc:  # never let the refresher die: decisions would go on from older and older data
            logger.opt(exception=exc).error("routing data refresher failed; continuing")
        del state


def _listen(ref: weakref.ref[RoutingState], stop: threading.Event, wake: threading.Event) -> None:
    state = ref()
    if state is None:
        return
    client, channel, pause = state.store.client, state.store.keys.changes, min(state.recheck_s, RETRY_S)
    del state
    lost = False
    while not stop.is_set():
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(channel)
            if lost:
                logger.debug("changes subscription restored")
                lost = False
            if (state := ref()) is None:
                return
            state.on_change("*")  # anything published while we were not subscribed was missed
            del state
            while not stop.is_set():
                message = pubsub.get_message(timeout=1.0)
                if (state := ref()) is None:
                    return
                if message is not None:
                    data = message["data"]
                    state.on_change(data.decode() if isinstance(data, bytes) else str(data))
                del state
        except (redis.RedisError, OSError) as exc:
            if ref() is None:  # the state was dropped while Redis was away: nobody is listening any more
                return
            if not lost:
                logger.debug("changes subscription lost: {} (logged once until it is back)", exc)
                lost = True
            stop.wait(pause)
        finally:
            try:
                pubsub.close()
            except (redis.RedisError, OSError):
                pass
