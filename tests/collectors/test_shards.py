"""Shard ownership (llmsched.collectors.shards): who scrapes which target, as a pure function of the membership table
and the tick, and the membership table itself in a real Redis (several members in one process, manual clocks)."""

from __future__ import annotations

import redis

from llmsched.collectors.shards import Peer, Shards, counting, owner

TARGETS = [f"pool:Common http://10.0.{i // 250}.{i % 250}:8000/metrics" for i in range(2000)]


def split(holders: tuple[str, ...]) -> dict[str, str | None]:
    return {t: owner(t, holders) for t in TARGETS}


def test_every_target_has_exactly_one_owner_and_the_shares_are_even():
    holders = ("a", "b", "c", "d")
    owners = split(holders)
    assert set(owners.values()) == set(holders)
    counts = {h: sum(1 for o in owners.values() if o == h) for h in holders}
    assert all(400 <= n <= 600 for n in counts.values()), counts  # 2000 / 4 = 500 each


def test_a_scraper_that_dies_hands_over_only_its_own_targets():
    before, after = split(("a", "b", "c")), split(("a", "c"))
    moved = {t for t in TARGETS if before[t] != after[t]}
    assert moved == {t for t in TARGETS if before[t] == "b"}


def test_a_scraper_that_joins_takes_targets_only_from_the_others_never_shuffles_them():
    before, after = split(("a", "b")), split(("a", "b", "c"))
    assert all(after[t] in (before[t], "c") for t in TARGETS)
    assert 500 <= sum(1 for t in TARGETS if after[t] == "c") <= 833


def test_a_newcomer_counts_only_after_the_join_delay_and_the_oldest_counts_at_once():
    peers = [Peer("old", expires=110.0, joined=100.0), Peer("new", expires=110.0, joined=105.0)]
    assert counting(peers, 105.5, join_delay=1.5) == ("old",)
    assert counting(peers, 106.5, join_delay=1.5) == ("new", "old")
    assert counting([Peer("alone", expires=110.0, joined=105.0)], 105.0, join_delay=1.5) == ("alone",)


def test_an_expired_scraper_no_longer_counts_and_the_next_oldest_takes_its_place():
    peers = [Peer("a", expires=103.0, joined=100.0), Peer("b", expires=106.0, joined=102.5)]
    assert counting(peers, 102.9, join_delay=1.5) == ("a",)  # b joined 0.4 s ago
    assert counting(peers, 103.0, join_delay=1.5) == ("b",)  # a expired: b is the oldest live one
    assert counting(peers, 106.0, join_delay=1.5) == ()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def member(client: redis.Redis, name: str, clock: Clock) -> Shards:
    return Shards(client, "llmsched:shards:scraper", ttl=3.0, holder=name, clock=clock, wall=clock)


def test_members_in_redis_see_each_other_and_agree_on_every_owner(redis_url: str):
    client = redis.Redis.from_url(redis_url)
    clock = Clock()
    a, b, c = (member(client, n, clock) for n in "abc")
    for m in (a, b, c):
        m.renew()
    for m in (a, b, c):
        m.renew()  # the first ones to join now see the later ones too
    assert [p.holder for p in a.peers] == ["a", "b", "c"] == [p.holder for p in c.peers]
    # Right after joining only the oldest counts; after the join delay all three, with the same view everywhere.
    t = a.now() + a.join_delay + 0.01
    mine = [m.mine(TARGETS, t) for m in (a, b, c)]
    assert sum(len(x) for x in mine) == len(TARGETS) and set().union(*mine) == set(TARGETS)
    assert all(x for x in mine)


def test_a_member_that_leaves_is_gone_from_the_others_view_at_their_next_renewal(redis_url: str):
    client = redis.Redis.from_url(redis_url)
    clock = Clock()
    a, b = member(client, "a", clock), member(client, "b", clock)
    a.renew(), b.renew(), a.renew()
    b.leave()
    assert not b.held and b.mine(TARGETS, b.now()) == set()
    a.renew()
    assert [p.holder for p in a.peers] == ["a"]
    assert a.mine(TARGETS, a.now()) == set(TARGETS)


def test_a_member_past_its_own_deadline_owns_nothing_even_before_redis_expires_it(redis_url: str):
    client = redis.Redis.from_url(redis_url)
    clock = Clock()
    a = member(client, "a", clock)
    a.renew()
    assert a.mine(TARGETS[:5], a.now()) == set(TARGETS[:5])
    clock.now += 3.0  # no renewal for one TTL (a pause, Redis unreachable): it stops by itself
    assert not a.held and a.mine(TARGETS[:5], a.now()) == set()
