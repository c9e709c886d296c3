"""Redis stopped, paused (SIGSTOP) or slow (DEBUG SLEEP) under a running `llmsched up`.

What must hold (issues 5 and 10): every select still answers HTTP 200, from the API worker's last snapshot while
it is fresh (members) and `none` once it is stale (BIG-IP then balances by itself), fast enough that the iRule's
500 ms sideband timeout is never near (client-side p99 at most 20 ms over 500 requests, each on a new connection
like the iRule's); no process crash-loops; and decisions pick members again within 2 s of Redis returning,
including a Redis that comes back empty and must be repopulated.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import pytest

from tests.faults.conftest import Lab, RecordFigure
from tests.faults.harness import http, latency_summary
from tests.faults.stack import Stack

REQUESTS = 500
P99_LIMIT_MS = 20.0
RECOVERY_LIMIT_S = 2.0
RECOVERY_WAIT_S = 15.0  # how long a failing run keeps looking, so the report can say how late it was
HEALTH_WAIT_S = 10.0  # /health calls Redis down after 3 s without a successful reload (api/health.py)


class Outage:
    """How one kind of outage starts and ends; `during()` wraps the measurement."""

    def __init__(
        self,
        name: str,
        begin: Callable[[Stack], None],
        end: Callable[[Stack], None],
        during: Callable[[Stack], AbstractContextManager] = lambda _s: nullcontext(),
    ) -> None:
        self.name, self.begin, self.end, self.during = name, begin, end, during


def _stop(stack: Stack) -> None:
    stack.redis.stop()


def _start_empty(stack: Stack) -> None:
    stack.redis.start()  # no persistence: it comes back with nothing in it


OUTAGES = {
    "stopped": Outage("Redis stopped, then restarted EMPTY", _stop, _start_empty),
    "paused": Outage("Redis paused (SIGSTOP), then SIGCONT", lambda s: s.redis.pause(), lambda s: s.redis.resume()),
    "slow": Outage(
        "Redis slow (DEBUG SLEEP 0.2 s back to back)", lambda s: None, lambda s: None, lambda s: s.redis.slow(0.2)
    ),
}


@pytest.mark.faults
@pytest.mark.parametrize("kind", list(OUTAGES))
def test_select_answers_from_the_last_snapshot_during_a_redis_outage_and_recovers_within_2_s(
    lab: Lab, record_figure: RecordFigure, kind: str
) -> None:
    outage = OUTAGES[kind]
    stack = lab.stack()
    healthy = [stack.select() for _ in range(200)]
    assert {r.status for r in healthy} == {200}
    stack.assert_picks(Counter(r.text for r in healthy))
    if kind == "stopped":  # one baseline row is enough for the table
        record_figure(
            "no fault (baseline for the outages below)",
            "select picks members; no `none` (decisions never wait for Redis)",
            latency_summary([r.seconds for r in healthy])["p99_ms"],
            "ms",
            figure=f"client p99 over 200 selects; none answers: {sum(r.text == 'none' for r in healthy)}",
        )
    log_from = stack.log_size()

    outage.begin(stack)
    with outage.during(stack):
        replies = [stack.select(timeout=1.0) for _ in range(REQUESTS)]
        live = http("GET", f"{stack.api}/livez")
        ready = http("GET", f"{stack.api}/health")
        # /health answers from the worker's memory: it says unhealthy once no reload succeeded for 3 s (or the
        # snapshot went stale first). A bound on the wait, not a speed requirement.
        deadline = time.monotonic() + HEALTH_WAIT_S
        while kind != "slow" and ready.status != 503 and time.monotonic() < deadline:
            time.sleep(0.1)
            ready = http("GET", f"{stack.api}/health")
    outage.end(stack)  # returns once Redis answers again: the recovery clock starts here
    recovery = stack.seconds_until_steady(RECOVERY_WAIT_S)
    restarts = stack.restarts(log_from)

    lat = latency_summary([r.seconds for r in replies])
    record_figure(
        outage.name,
        "select answers HTTP 200: members from the last snapshot, `none` once it is stale",
        lat["p99_ms"],
        "ms",
        figure=f"client p99 over {REQUESTS} selects (p50 {lat['p50_ms']:.1f} ms, max {lat['max_ms']:.0f} ms)",
    )
    record_figure(
        outage.name,
        "decisions pick members again within 2 s of Redis returning",
        recovery if recovery is not None else f"> {RECOVERY_WAIT_S:g}",
        "s",
        figure="Redis back -> decisions steady (60 member answers in a row: every API worker)",
    )
    record_figure(
        outage.name,
        "no process crash-loops (restarts logged by `up`)",
        len(restarts),
        "restarts",
        figure="restarts during the outage",
    )

    assert {r.status for r in replies} == {200}
    texts = [r.text for r in replies]
    assert set(texts) <= {"none", *stack.members}, Counter(texts)
    assert texts[0] in stack.members, "the snapshot was fresh when the outage began: decide from it"
    if kind != "slow":  # (a slow Redis still answers some reloads, so fresh data may come back in between)
        first_none = texts.index("none") if "none" in texts else len(texts)
        assert set(texts[first_none:]) <= {"none"}, "once stale, no member answer until Redis is back"
    assert live.status == 200, "liveness must not depend on Redis"
    if kind != "slow":  # a slow Redis still answers readiness's reads, within the API store's 250 ms timeout
        assert ready.status == 503 and ready.json()["status"] == "unhealthy"
    assert lat["p99_ms"] <= P99_LIMIT_MS, lat
    assert restarts == [], restarts
    assert recovery is not None and recovery <= RECOVERY_LIMIT_S, f"recovery took {recovery} s"
    stack.deciding(n=60)
