"""The quick core of the fault suite, run by `make test`: one `llmsched up` stack, and one brief injection of each
fault class in turn (engine, BIG-IP, BIG-IP token, Redis paused, Redis restarted empty, secrets, SIGTERM). The
thorough versions, with more requests, more fault kinds and longer windows, are marked `faults`
(`make test-faults`). The tests run in file order and each leaves the stack healthy for the next; the last one
stops it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest

from tests.faults.conftest import Lab, RecordFigure
from tests.faults.emulated import POOL
from tests.faults.harness import latency_summary, wait_for
from tests.faults.secret_audit import api_responses, command_lines, leaks, redis_dump
from tests.faults.stack import Stack, stop_up
from tests.helpers import alive, descendants

SCRAPE_MS = 500
INTERVAL_S = SCRAPE_MS / 1000
BEARER = "quick-bearer-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def stack(module_lab: Lab) -> Iterator[Stack]:
    engines = module_lab.engines(3, api_key=BEARER)
    bigip = module_lab.bigip({POOL: [e.member for e in engines]}, password="quick-F5-" + secrets.token_hex(8))
    yield module_lab.up(bigip, engines, module_lab.redis(), pools={POOL: {"APIkey": BEARER}}, scrape_ms=SCRAPE_MS)


def seconds_until(what: str, check, limit: float) -> float:
    started = time.monotonic()
    wait_for(what, check, limit, every=0.01)
    return time.monotonic() - started


def test_quick_an_engine_that_goes_down_leaves_the_decisions_and_comes_back(
    stack: Stack, record_figure: RecordFigure
) -> None:
    target = stack.engines[0]
    target.stop()
    out = seconds_until("the member to be ineligible", lambda: not stack.eligible(target.member), 5)
    picks = stack.picks(40)
    target.start()
    back = seconds_until("the member to be eligible again", lambda: stack.eligible(target.member), 5)
    record_figure(
        "engine down (quick)",
        "out within 2 scrape intervals, back within 2",
        out / INTERVAL_S,
        "intervals",
        figure=f"out {out:.2f} s, back {back:.2f} s",
    )
    assert target.member not in picks
    stack.assert_picks(picks, stack.members[1:])
    assert out <= 2 * INTERVAL_S and back <= 2 * INTERVAL_S


def test_quick_bigip_unreachable_keeps_the_membership_with_its_age_and_recovers(
    stack: Stack, record_figure: RecordFigure
) -> None:
    before = [(m["ip"], m["port"]) for m in stack.status()["members"]]
    stack.bigip.stop()
    wait_for("the BIG-IP error in status", lambda: stack.status().get("bigip_error"), 5)
    time.sleep(1.5)
    view = stack.status()
    assert [(m["ip"], m["port"]) for m in view["members"]] == before
    assert view["members_age"] >= 1.0
    stack.deciding(n=20)
    stack.bigip.start()
    back = seconds_until("polling to recover", lambda: stack.status().get("bigip_error") is None, 5)
    record_figure(
        "BIG-IP unreachable (quick)",
        "membership kept with `members_age`; recovers",
        back,
        "s",
        figure=f"age shown {view['members_age']:.1f} s",
    )


def test_quick_a_revoked_bigip_token_costs_one_new_login(stack: Stack, record_figure: RecordFigure) -> None:
    logins = stack.bigip.state.logins
    stack.bigip.admin("POST", "/tokens/revoke", {})
    wait_for("a new login", lambda: stack.bigip.state.logins > logins, 5)
    time.sleep(1.0)
    record_figure(
        "BIG-IP token revoked (quick)", "exactly one new login", stack.bigip.state.logins - logins, "login(s)"
    )
    assert stack.bigip.state.logins == logins + 1
    assert stack.status().get("bigip_error") is None


def test_quick_a_paused_redis_is_decided_from_the_last_snapshot_fast_and_decisions_recover(
    stack: Stack, record_figure: RecordFigure
) -> None:
    log_from = stack.log_size()
    stack.redis.pause()
    try:
        replies = [stack.select(timeout=1.0) for _ in range(100)]
    finally:
        stack.redis.resume()
    back = stack.seconds_until_steady(5)
    lat = latency_summary([r.seconds for r in replies])
    record_figure(
        "Redis paused (quick)",
        "answers from the last snapshot (`none` once stale); recovery within 2 s",
        lat["p99_ms"],
        "ms",
        figure=f"client p99 of 100 selects; steady again {'never' if back is None else f'{back:.2f} s'}",
    )
    # The outage is shorter than stale_after (3 s here): every answer comes from the worker's last snapshot.
    assert {r.status for r in replies} == {200}
    assert {r.text for r in replies} <= set(stack.members), {r.text for r in replies}
    assert lat["p99_ms"] <= 20.0, lat
    assert back is not None and back <= 2.0
    assert stack.restarts(log_from) == []


def test_quick_a_redis_restarted_empty_is_written_back_and_decisions_resume_within_2_s(
    stack: Stack, record_figure: RecordFigure
) -> None:
    log_from = stack.log_size()
    stack.redis.stop()
    assert {stack.select().text for _ in range(20)} <= set(stack.members)  # the last snapshot is still fresh
    stack.redis.start()
    back = stack.seconds_until_steady(10)
    record_figure(
        "Redis restarted empty (quick)",
        "repopulated; decisions steady again within 2 s",
        "> 10" if back is None else back,
        "s",
    )
    assert back is not None and back <= 2.0
    assert stack.restarts(log_from) == []


def test_quick_no_secret_in_logs_redis_or_api_answers(stack: Stack, record_figure: RecordFigure) -> None:
    places = {
        "up.log": stack.output().encode(),
        **redis_dump(stack.redis.client()),
        **api_responses(stack),
        **command_lines(stack.up.pid),
    }
    known = {
        "BIG-IP password": stack.bigip.password,
        "metrics Bearer key": BEARER,
        **{f"BIG-IP token #{i + 1}": t for i, t in enumerate(stack.bigip.state.issued)},
    }
    found = leaks(known, places)
    record_figure(
        "secrets audit (quick)",
        "no password, token or key in logs, Redis, answers",
        len(found),
        "leaks",
        figure=f"{len(known)} secrets in {len(places)} places",
    )
    assert found == []


def test_quick_sigterm_stops_up_within_5_s_and_deletes_the_bigip_token(
    stack: Stack, record_figure: RecordFigure
) -> None:
    tree = descendants(stack.up.pid)
    code, took = stop_up(stack)
    record_figure("SIGTERM to `llmsched up` (quick)", "all stopped within 5 s; token deleted", took, "s")
    assert code == 0 and took < 5.0
    assert [p for p in tree if alive(p)] == []
    assert stack.bigip.active_tokens() == 0
