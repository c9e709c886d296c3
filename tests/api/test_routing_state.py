"""The worker's in-memory routing data: new snapshots and pools arrive by push, herd counts are exchanged in the
background, and a Redis outage means deciding from the last snapshot until it is stale, then `none`."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator

import pytest

from llmsched.api.routing_state import RoutingState
from llmsched.api.select import answer_select
from llmsched.shared.routing.decide import eligible
from llmsched.shared.store import Store, connect

from tests.helpers import make_store, seed
from tests.shared.redis_servers import RedisProc

M = {"waiting_queue": 0.0, "cache_usage": 0.1, "running_req": 1.0}
BODY = b'{"pool_name":"p1","partition":"Common","members":["10.0.0.1:8000","10.0.0.2:8000"]}'


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Waits for something that happens in the background; the bound only keeps a broken build from hanging."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.fixture()
def state(store) -> Iterator[RoutingState]:
    # No periodic full reload during the test: only the push can bring new data.
    routing = RoutingState(store, recheck_s=3600.0).start()
    yield routing
    routing.stop()


def test_a_published_config_and_a_new_score_snapshot_reach_the_worker_by_push(state, store):
    seeding_at = time.time()
    seed(store, {"10.0.0.1:8000": M})
    assert wait_for(lambda: (state.loaded_at or 0.0) > seeding_at)  # the config's `*` announcement: full reload
    snapshot = dict(state.inputs("p1:Common")[1])
    snapshot["computed_at"] += 5.0
    store.set_scores("p1:Common", snapshot)  # the scorer's write: a new snapshot, nothing else
    assert wait_for(lambda: state.inputs("p1:Common")[1]["computed_at"] == snapshot["computed_at"])


def test_a_new_snapshot_is_applied_when_announced_not_at_the_next_tick(store):
    # A tick longer than the wait: only the announcement itself can bring the snapshot in time.
    seed(store, {"10.0.0.1:8000": M})
    routing = RoutingState(store, tick_s=3600.0, recheck_s=3600.0).start()
    try:
        snapshot = dict(routing.inputs("p1:Common")[1])
        snapshot["computed_at"] += 5.0
        store.set_scores("p1:Common", snapshot)
        assert wait_for(lambda: routing.inputs("p1:Common")[1]["computed_at"] == snapshot["computed_at"], 5.0)
    finally:
        routing.stop()


def test_a_dropped_state_stops_listening_while_redis_is_away() -> None:
    import gc
    import threading

    server = RedisProc().start()
    try:
        routing = RoutingState(Store(connect(server.url, socket_timeout=0.05)), tick_s=0.01, recheck_s=0.05).start()
        threads = list(routing._threads)
        server.close()
        time.sleep(0.2)  # the subscription is lost and retried
        del routing
        gc.collect()
        assert wait_for(lambda: not any(t.is_alive() for t in threads), 5.0), threading.enumerate()
    finally:
        server.close()


def test_a_pool_published_after_start_is_read_on_its_first_decision(state, store):
    seed(store, {"10.0.0.1:8000": M}, pool="late")
    assert state.inputs("late:Common")[0] is not None


def test_counts_are_seen_at_once_by_the_worker_and_by_redis_after_a_tick(state, store):
    seed(store, {"10.0.0.1:8000": M})
    state.inputs("p1:Common")
    state.count("p1:Common", "10.0.0.1:8000", 60)
    assert state.inputs("p1:Common")[2] == {"10.0.0.1:8000": 1}
    dispatch = store.keys.pool_dispatch("p1:Common")
    assert wait_for(lambda: store.client.hget(dispatch, "10.0.0.1:8000") == b"1")
    assert state.inputs("p1:Common")[2] == {"10.0.0.1:8000": 1}  # counted once: sent, then read back


def test_with_redis_gone_decisions_go_on_from_the_last_snapshot_until_it_is_stale_then_none() -> None:
    server = RedisProc().start()
    try:
        seed(make_store(server.url), {"10.0.0.1:8000": M, "10.0.0.2:8000": M}, stale_after=1.0)
        routing = RoutingState(Store(connect(server.url, socket_timeout=0.05)), tick_s=0.01, recheck_s=0.05).start()
        server.close()
        rng = random.Random(1)
        first = answer_select(BODY, routing, rng)
        assert first.answer in ("10.0.0.1:8000", "10.0.0.2:8000")
        assert wait_for(lambda: answer_select(BODY, routing, rng).answer == "none")
        assert answer_select(BODY, routing, rng).reason == "every candidate's metrics are stale"
        routing.stop()
    finally:
        server.close()


def test_the_kept_eligible_list_follows_staleness_new_snapshots_and_each_candidate_list(store):
    t0 = 1_000_000.0
    seed(store, {"10.0.0.1:8000": M, "10.0.0.2:8000": M}, stale_after=60.0, now=t0)
    config, snapshot = store.routing_data(["p1:Common"])["p1:Common"]
    state = RoutingState(store)  # not started: only what the test passes in
    both, one = ["10.0.0.1:8000", "10.0.0.2:8000"], ["10.0.0.2:8000"]

    def kept(snap, candidates, now):
        return state.eligible("p1:Common", config, snap, candidates, now)

    assert kept(snapshot, both, t0 + 10).answers == both
    assert kept(snapshot, one, t0 + 10).answers == one  # each candidate list has its own entry
    assert kept(snapshot, both, t0 + 60).answers == both
    stale = kept(snapshot, both, t0 + 60.5)  # the same inputs, but every member turned stale meanwhile
    assert stale.answers == [] and stale.reason == eligible(config, snapshot, both, t0 + 60.5).reason
    disabled = {**snapshot, "members": [{**snapshot["members"][0], "status": "disabled"}, snapshot["members"][1]]}
    assert kept(disabled, both, t0 + 10).answers == one  # a new snapshot is filtered anew


def test_a_redis_outage_is_logged_once_per_background_step_not_every_tick() -> None:
    from loguru import logger

    server = RedisProc().start()
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="DEBUG", format="{message}")
    try:
        routing = RoutingState(Store(connect(server.url, socket_timeout=0.05)), tick_s=3600.0, recheck_s=0.0)
        routing.reload()
        server.close()
        for _ in range(5):
            routing.tick()
        assert sum("routing data not reloaded" in line for line in lines) == 1, lines
    finally:
        logger.remove(sink)
        server.close()
