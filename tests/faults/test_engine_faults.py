"""An engine down, hanging, answering an error, garbage or partial metrics; every candidate down or stale.

What must hold: the member stops being picked within 2 scrape intervals of the fault and is
picked again within 2 intervals of its recovery (both measured here, from the fault to the first status that
shows the member ineligible, and back); while a member is out, no decision names it even though the iRule still
offers it. If every candidate is down, or every candidate's metrics are older than `stale_after`, the answer is
`none`: BIG-IP balances by itself (fail-open).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from tests.faults.conftest import Lab, RecordFigure
from tests.faults.emulated import Engine
from tests.faults.harness import wait_for
from tests.faults.stack import Stack

pytestmark = pytest.mark.faults

SCRAPE_MS = 500
INTERVAL_S = SCRAPE_MS / 1000
LIMIT_S = 2 * INTERVAL_S


def _restart(engine: Engine) -> None:
    engine.start()


FAULTS: dict[str, tuple[str, Callable[[Engine], None], Callable[[Engine], None]]] = {
    "down": ("engine down (process gone)", lambda e: e.stop(), _restart),
    "hang": ("engine hangs on /metrics (timeout 0.25 s)", lambda e: e.mode("hang"), lambda e: e.mode("ok")),
    "error": ("engine answers /metrics with HTTP 500", lambda e: e.mode("error", status=500), lambda e: e.mode("ok")),
    "garbage": ("engine answers garbage (HTML)", lambda e: e.mode("garbage"), lambda e: e.mode("ok")),
    "partial": (
        "engine answers partial metrics (no queue, no KV)",
        lambda e: e.mode("partial"),
        lambda e: e.mode("ok"),
    ),
}


def seconds_until(check: Callable[[], bool], limit: float = 10.0) -> float:
    started = time.monotonic()
    wait_for("the member's eligibility to change", check, limit, every=0.01)
    return time.monotonic() - started


def none_eligible(stack: Stack) -> bool:
    """No member eligible, as the status endpoint (Redis) shows it and as the decisions do: each API worker decides
    from its in-memory snapshot, which follows Redis by push a moment later."""
    members = stack.status().get("members", [])
    if len(members) != len(stack.engines) or any(m["eligible"] for m in members):
        return False
    return set(stack.picks(5)) == {"none"}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_failing_engine_leaves_the_decisions_within_2_scrape_intervals_and_returns_within_2(
    lab: Lab, record_figure: RecordFigure, fault: str
) -> None:
    name, inject, repair = FAULTS[fault]
    stack = lab.stack(scrape_ms=SCRAPE_MS)
    target = stack.engines[0]
    assert target.member in stack.picks(60)

    inject(target)
    out = seconds_until(lambda: not stack.eligible(target.member))
    picks = stack.picks(100)  # the iRule still offers it: BIG-IP knows nothing of our view
    view = stack.member_view(target.member)
    repair(target)
    back = seconds_until(lambda: stack.eligible(target.member))

    record_figure(
        name,
        "stops being picked within 2 scrape intervals",
        out / INTERVAL_S,
        "intervals",
        figure=f"{out:.2f} s at {SCRAPE_MS} ms",
    )
    record_figure(
        name,
        "picked again within 2 intervals of recovering",
        back / INTERVAL_S,
        "intervals",
        figure=f"{back:.2f} s at {SCRAPE_MS} ms",
    )
    assert target.member not in picks and sum(picks.values()) == 100, picks
    stack.assert_picks(picks, stack.members[1:])
    assert view["score"] == 0.0 and view["eligible"] is False
    assert out <= LIMIT_S, f"still picked {out:.2f} s after the fault"
    assert back <= LIMIT_S, f"picked again only {back:.2f} s after recovering"
    assert target.member in stack.picks(60)


def test_every_candidate_down_answers_none_and_every_candidate_stale_answers_none_after_stale_after(
    lab: Lab, record_figure: RecordFigure
) -> None:
    stack = lab.stack(scrape_ms=SCRAPE_MS)
    stale_after = max(3.0, 3 * INTERVAL_S)  # the default: 3 scrape intervals, at least 3 s

    for engine in stack.engines:
        engine.stop()
    all_down = seconds_until(lambda: none_eligible(stack))
    assert set(stack.picks(50)) == {"none"}
    for engine in stack.engines:
        engine.start()
    wait_for("the engines to be picked again", lambda: stack.all_eligible(), 5)

    # Stale: the scraper stops (SIGSTOP), the engines are fine, but nothing fresh reaches Redis any more.
    scraper = stack.child("scraper")
    os.kill(scraper, signal.SIGSTOP)
    try:
        stopped_at = time.monotonic()
        newest = min(m["data_age"] for m in stack.status()["members"])
        wait_for("every member to be stale", lambda: none_eligible(stack), stale_after + 3, every=0.01)
        stale = time.monotonic() - stopped_at + newest
        assert set(stack.picks(50)) == {"none"}
    finally:
        os.kill(scraper, signal.SIGCONT)
    back = seconds_until(lambda: stack.select().text in stack.members)

    record_figure(
        "every candidate down",
        "answer `none` (fail-open: BIG-IP balances)",
        all_down / INTERVAL_S,
        "intervals",
        figure=f"{all_down:.2f} s to all-none",
    )
    record_figure(
        "every candidate stale (scraper frozen)",
        f"answer `none` once metrics are older than stale_after ({stale_after:g} s)",
        stale,
        "s",
        figure="age of the newest scrape at the first none",
    )
    record_figure("every candidate stale (scraper frozen)", "members picked again after the scraper resumes", back, "s")
    assert all_down <= LIMIT_S
    assert stale_after - 0.2 <= stale <= stale_after + 2 * INTERVAL_S, stale
