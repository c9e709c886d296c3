"""Sharded scraping: the pool members are split across every live scraper, each member owned by exactly one.

Membership lives in one Redis hash (`Keys.shard_members(role)`): holder id -> "expires_ms joined_ms", both on
Redis's own clock (`TIME`), so the hosts' clocks never have to agree. Every scraper renews its entry every third of
the TTL (`scheduler.ha_lease_ttl`) with one script that also drops expired entries and returns the whole table;
a clean shutdown removes the entry. Like a lease holder, a scraper keeps its own deadline (the moment it *sent*
its last successful renewal plus the TTL, on the monotonic clock) and works only before it.

Who owns what is a pure function of that table and of the tick (docs/ha.md):

* the scrapers that count at server time t are the live ones (expires > t) that joined at least `join_delay`
  before t, plus the oldest live one (so a lone scraper works at once). `join_delay` is longer than a renewal
  interval, so every other scraper has seen a newcomer before it counts: all agree on the set for a tick;
* each target (pool + URL) goes to the counting scraper with the highest rendezvous hash of (scraper, target):
  a scraper that joins or dies moves only its own share of targets;
* ticks are aligned on the server clock (tick k starts at k x interval), so every scraper evaluates ownership
  for the same instants: one owner per target per tick, no target twice, none skipped.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import redis
from loguru import logger

from llmsched.shared.lease import Holding

# KEYS[1] membership hash; ARGV[1] holder, ARGV[2] TTL ms, ARGV[3] "leave" to remove it instead.
# Returns {now_ms, holder1, entry1, holder2, entry2, ...} after dropping expired entries.
_BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local flat = redis.call('HGETALL', KEYS[1])
local out = {now}
local mine = nil
for i = 1, #flat, 2 do
  local expires, joined = string.match(flat[i + 1], '^(%d+) (%d+)$')
  if expires == nil or tonumber(expires) <= now then
    redis.call('HDEL', KEYS[1], flat[i])
  elseif flat[i] == ARGV[1] then
    mine = joined
  else
    table.insert(out, flat[i]); table.insert(out, flat[i + 1])
  end
end
if ARGV[3] == 'leave' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return out
end
local entry = tostring(now + tonumber(ARGV[2])) .. ' ' .. (mine or tostring(now))
redis.call('HSET', KEYS[1], ARGV[1], entry)
table.insert(out, ARGV[1]); table.insert(out, entry)
return out
"""


@dataclass(frozen=True)
class Peer:
    holder: str
    expires: float  # server clock, seconds
    joined: float


def counting(peers: Iterable[Peer], t: float, join_delay: float) -> tuple[str, ...]:
    """The holders that own targets at server time `t`, sorted: live ones that joined `join_delay` before `t`,
    and the oldest live one."""
    live = [p for p in peers if p.expires > t]
    if not live:
        return ()
    oldest = min(live, key=lambda p: (p.joined, p.holder))
    return tuple(sorted({p.holder for p in live if p.joined + join_delay <= t} | {oldest.holder}))


def _weight(holder: str, target: str) -> bytes:
    return hashlib.blake2b(f"{holder}\0{target}".encode(), digest_size=8).digest()


def owner(target: str, holders: Sequence[str]) -> str | None:
    """Rendezvous hashing: the holder with the highest hash of (holder, target); None when there is none."""
    return max(holders, key=lambda h: _weight(h, target)) if holders else None


class Shards(Holding):
    """One scraper's membership and its view of the others. Blocking methods; call them off the event loop."""

    def _scripts(self, client: redis.Redis) -> None:
        self._beat = client.register_script(_BEAT)
        self.peers: tuple[Peer, ...] = ()
        self.offset = 0.0  # server clock - local wall clock, from the last renewal
        self._owners: dict[tuple[str, ...], dict[str, str | None]] = {}  # holders -> target -> owner (memo)

    @property
    def join_delay(self) -> float:
        """A newcomer counts this long after joining: every other scraper renews (and sees it) meanwhile."""
        return self.interval * 1.5

    def now(self) -> float:
        """The server clock, estimated from the last renewal (the ticks are aligned on it)."""
        return self._wall() + self.offset

    def renew(self) -> None:
        """Renew (or join), refresh the view of the others and the clock offset. Redis errors propagate."""
        sent, wall = self._clock(), self._wall()
        reply = self._beat(keys=[self.key], args=[self.holder, self._ttl_ms(), ""])
        back = self._wall()
        self._valid_until = sent + self.ttl
        self._read(reply, (wall + back) / 2)

    def leave(self) -> None:
        self._valid_until = 0.0
        self._beat(keys=[self.key], args=[self.holder, 1, "leave"])

    def _read(self, reply: list, local_mid: float) -> None:
        now_ms, flat = int(reply[0]), reply[1:]
        self.offset = now_ms / 1000 - local_mid
        peers = []
        for i in range(0, len(flat), 2):
            expires, joined = (int(x) / 1000 for x in _text(flat[i + 1]).split())
            peers.append(Peer(_text(flat[i]), expires, joined))
        self.peers = tuple(sorted(peers, key=lambda p: p.holder))

    def holders_at(self, t: float) -> tuple[str, ...]:
        """Who owns targets at server time `t` (empty while this scraper is not a live member itself)."""
        if not self.held:
            return ()
        return counting(self.peers, t, self.join_delay)

    def mine(self, targets: Iterable[str], t: float) -> set[str]:
        """The targets this scraper owns at server time `t`."""
        holders = self.holders_at(t)
        if self.holder not in holders:
            return set()
        memo = self._owners.get(holders)
        if memo is None:
            self._owners = {holders: {}}  # the set changed: earlier answers are of no use any more
            memo = self._owners[holders]
        out = set()
        for target in targets:
            who = memo.get(target, "")
            if who == "":
                who = memo[target] = owner(target, holders)
            if who == self.holder:
                out.add(target)
        return out

    def forget(self, keep: set[str]) -> None:
        """Drop memoised targets that are gone, so memory follows the pools' size."""
        for memo in self._owners.values():
            for target in [t for t in memo if t not in keep]:
                del memo[target]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def keep(shards: Shards, role: str, stop: asyncio.Event, on_change: Callable[[bool], None]) -> None:
    """Renew the membership every `shards.interval` s until `stop`, then leave; log each change of the live set
    and of this scraper's own standing once; `on_change(held)` when the standing changes."""
    holding = False
    seen: tuple[str, ...] = ()
    unreachable = False
    while not stop.is_set():
        try:
            await asyncio.to_thread(shards.renew)
            if unreachable:
                logger.info("{} shards: Redis reachable again", role)
            unreachable = False
        except redis.RedisError as exc:
            if not unreachable:
                logger.warning(
                    "{} shards: Redis unreachable ({}: {}); working until the membership runs out",
                    role,
                    type(exc).__name__,
                    exc,
                )
            unreachable = True
        if shards.held != holding:
            holding = shards.held
            logger.log(
                "INFO" if holding else "WARNING",
                "{} shards: {} {}",
                role,
                shards.holder,
                "is a live member" if holding else "is no live member any more: stops scraping",
            )
            on_change(holding)
        live = tuple(p.holder for p in shards.peers)
        if holding and live != seen:
            seen = live
            logger.info("{} shards: {} live scraper(s) share the members: {}", role, len(live), ", ".join(live))
        try:
            await asyncio.wait_for(stop.wait(), timeout=shards.interval)
        except TimeoutError:
            pass
    try:
        await asyncio.to_thread(shards.leave)
        logger.info("{} shards: {} left; the others take its members over", role, shards.holder)
    except redis.RedisError as exc:
        logger.warning("{} shards: could not leave ({}); the entry expires within {:g} s", role, exc, shards.ttl)
