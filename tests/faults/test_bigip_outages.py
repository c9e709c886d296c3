"""BIG-IP unreachable, slow, answering 5xx, tokens revoked or expired, password changed, under `llmsched up`.

What must hold: the last known membership of every pool is kept and its age shows in
`/pools/<pool>/<partition>/status` (`members_age`, `bigip_error`); no pool is ever dropped; decisions go on with
the last membership; a 401 on a call costs exactly one new login; the log says clearly what happened and holds no
secret; polling recovers by itself, and the time it takes after BIG-IP is healthy again is measured.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.faults.conftest import Lab, RecordFigure
from tests.faults.emulated import POOL
from tests.faults.harness import wait_for
from tests.faults.stack import Stack

pytestmark = pytest.mark.faults

POOL_B = "fault_pool_b"
FETCH_S = 0.5
F5_TIMEOUT_S = 1.0


def bigip_stack(lab: Lab) -> Stack:
    """Two pools on one BIG-IP (the second holds two of the three engines)."""
    engines = lab.engines(3)
    members = [e.member for e in engines]
    layout = {POOL: members, POOL_B: members[:2]}
    return lab.up(
        lab.bigip(layout), engines, lab.redis(), pools={POOL: {}, POOL_B: {}}, pool_members=layout, fetch_s=FETCH_S
    )


def views(stack: Stack) -> dict[str, dict[str, Any]]:
    found = {v["name"]: v for v in stack.pools_status()}
    assert found, "GET /pools/status gave no pool"
    return found


def membership(view: dict[str, Any]) -> list[tuple]:
    return [(m["ip"], m["port"], m["status"]) for m in view["members"]]


def every_pool_failing(stack: Stack) -> dict[str, dict[str, Any]] | None:
    found = views(stack)
    return found if len(found) == 2 and all(v["bigip_error"] for v in found.values()) else None


def every_pool_fresh(stack: Stack) -> bool:
    found = views(stack)
    return len(found) == 2 and all(
        v["bigip_error"] is None and (v["members_age"] or 99) < FETCH_S for v in found.values()
    )


def time_to_recover(stack: Stack, limit: float = 15.0) -> float:
    started = time.monotonic()
    wait_for("every pool to be read from BIG-IP again", lambda: every_pool_fresh(stack), limit)
    return time.monotonic() - started


def assert_kept(stack: Stack, before: dict[str, dict[str, Any]], min_age: float) -> dict[str, dict[str, Any]]:
    """Every pool still listed with the same members, its age growing, and decisions still picking members."""
    during = views(stack)
    assert set(during) == set(before), "a pool was dropped"
    for name, view in during.items():
        assert membership(view) == membership(before[name]), name
        assert view["members_age"] >= min_age, view
    stack.assert_picks(stack.picks(40))
    stack.assert_picks(stack.picks(20, pool=POOL_B), stack.members[:2])
    return during


def assert_no_secret(stack: Stack, *extra: str) -> None:
    text = stack.output()
    for secret in (stack.bigip.password, *stack.bigip.state.issued, *extra):
        assert secret not in text, "a secret reached the log"


def test_bigip_unreachable_keeps_every_pool_with_its_age_visible_and_polling_recovers_when_it_returns(
    lab: Lab, record_figure: RecordFigure
) -> None:
    stack = bigip_stack(lab)
    before = views(stack)
    log_from = stack.log_size()
    stack.bigip.stop()
    failing = wait_for("every pool to show the BIG-IP error", lambda: every_pool_failing(stack), 5)
    assert all(
        "Cannot connect" in v["bigip_error"] or "connect" in v["bigip_error"].lower() for v in failing.values()
    ), failing
    time.sleep(6 * FETCH_S)
    during = assert_kept(stack, before, min_age=5 * FETCH_S)
    stack.bigip.start()
    recovery = time_to_recover(stack)
    record_figure(
        "BIG-IP unreachable (emulator stopped)",
        "last membership kept, `members_age` grows, no pool dropped, decisions go on",
        max(v["members_age"] for v in during.values()),
        "s",
        figure="membership age shown during the outage",
    )
    record_figure(
        "BIG-IP unreachable (emulator stopped)",
        "polling recovers by itself",
        recovery,
        "s",
        figure="BIG-IP back -> every pool read again",
    )
    log = stack.output()[log_from:]
    for pool in (POOL, POOL_B):  # one clear line per pool and change of state, not one per cycle
        assert log.count(f"pool {pool}:Common: ") >= 1
        assert (
            sum(
                1
                for line in log.splitlines()
                if f"pool {pool}:Common:" in line and "keeping the last known membership" in line
            )
            == 1
        ), log
    assert "BIG-IP read again" in log
    assert_no_secret(stack)
    assert recovery <= 2 * FETCH_S + F5_TIMEOUT_S + 1.0


def test_bigip_slower_than_f5_timeout_is_an_outage_that_keeps_the_membership_and_recovers(
    lab: Lab, record_figure: RecordFigure
) -> None:
    stack = bigip_stack(lab)
    before = views(stack)
    stack.bigip.admin("POST", "/faults", {"latency": 0.3})  # slow but within f5.timeout: no failure
    time.sleep(4 * FETCH_S)
    assert every_pool_fresh(stack) or all(v["bigip_error"] is None for v in views(stack).values())
    stack.bigip.admin("POST", "/faults", {"latency": F5_TIMEOUT_S + 0.5})
    failing = wait_for("every pool to show the timeout", lambda: every_pool_failing(stack), 8)
    assert all(f"within {F5_TIMEOUT_S:g} s" in v["bigip_error"] for v in failing.values()), failing
    time.sleep(2 * F5_TIMEOUT_S)
    assert_kept(stack, before, min_age=2 * F5_TIMEOUT_S)
    stack.bigip.admin("DELETE", "/faults")
    recovery = time_to_recover(stack)
    record_figure(
        "BIG-IP slow (1.5 s per call, f5.timeout 1 s)",
        "an outage: last membership kept; recovers",
        recovery,
        "s",
        figure="latency removed -> every pool read again",
    )
    assert_no_secret(stack)


@pytest.mark.parametrize("status", [500, 503])
def test_bigip_5xx_answers_keep_the_last_membership_and_polling_recovers_by_itself(
    lab: Lab, record_figure: RecordFigure, status: int
) -> None:
    stack = bigip_stack(lab)
    before = views(stack)
    stack.bigip.admin("POST", "/faults", {"fail_next": 100_000, "status": status, "path_prefix": "/mgmt/tm"})
    failing = wait_for(f"every pool to show HTTP {status}", lambda: every_pool_failing(stack), 5)
    assert all(str(status) in v["bigip_error"] for v in failing.values()), failing
    time.sleep(4 * FETCH_S)
    assert_kept(stack, before, min_age=3 * FETCH_S)
    stack.bigip.admin("DELETE", "/faults")
    recovery = time_to_recover(stack)
    record_figure(
        f"BIG-IP answers HTTP {status}",
        "last membership kept, error shown in status; recovers",
        recovery,
        "s",
        figure="faults cleared -> every pool read again",
    )
    assert recovery <= 2 * FETCH_S + 1.0
    assert_no_secret(stack)


def test_a_revoked_or_expired_token_costs_exactly_one_new_login_and_no_pool_error(
    lab: Lab, record_figure: RecordFigure
) -> None:
    stack = bigip_stack(lab)
    state = stack.bigip.state
    for how, action in (
        ("revoked", lambda: stack.bigip.admin("POST", "/tokens/revoke", {})),
        ("expired", lambda: stack.bigip.admin("POST", "/settings", {"advance_clock": 36_001})),
    ):
        logins = state.logins
        log_from = stack.log_size()
        action()
        started = time.monotonic()
        wait_for(f"a new login after the token was {how}", lambda n=logins: state.logins > n, 5)
        relogin = time.monotonic() - started
        time.sleep(4 * FETCH_S)  # several more cycles, both pools: still that one login
        assert state.logins == logins + 1, f"{state.logins - logins} logins after one {how} token"
        assert all(v["bigip_error"] is None for v in views(stack).values())
        assert "logging in again" in stack.output()[log_from:]
        record_figure(
            f"BIG-IP token {how}",
            "exactly one new login (the 401'd call is retried once), no pool error",
            state.logins - logins,
            "login(s)",
            figure=f"new login {relogin:.2f} s after",
        )
    assert_no_secret(stack)


def test_a_changed_bigip_password_is_reported_without_secrets_keeps_the_membership_and_recovers(
    lab: Lab, record_figure: RecordFigure
) -> None:
    stack = bigip_stack(lab)
    before = views(stack)
    new_password = "rotated-Pw-0c6f1e"
    stack.bigip.admin("POST", "/users", {"username": "admin", "password": new_password})
    stack.bigip.admin("POST", "/tokens/revoke", {})  # the old session ends: the poller must log in again
    logins = stack.bigip.state.logins
    failing = wait_for("every pool to show the refused login", lambda: every_pool_failing(stack), 5)
    assert all("login" in v["bigip_error"].lower() or "auth" in v["bigip_error"].lower() for v in failing.values()), (
        failing
    )
    window_start, attempts_at_start = time.monotonic(), stack.bigip.state.logins
    time.sleep(6 * FETCH_S)
    attempts = stack.bigip.state.logins - attempts_at_start
    cycles = (time.monotonic() - window_start) / FETCH_S
    assert_kept(stack, before, min_age=5 * FETCH_S)
    # One failed login per poll cycle, not one per pool: BIG-IP may lock an account after repeated failures.
    assert attempts <= cycles + 1, (attempts, cycles)
    stack.bigip.admin("POST", "/users", {"username": "admin", "password": stack.bigip.password})
    recovery = time_to_recover(stack)
    record_figure(
        "BIG-IP password changed (login refused)",
        "membership kept; one login attempt per cycle, not per pool",
        attempts / max(cycles, 1),
        "attempts/cycle",
    )
    record_figure(
        "BIG-IP password changed (login refused)",
        "recovers once the credentials work again",
        recovery,
        "s",
        figure="password restored -> every pool read again",
    )
    assert stack.bigip.state.logins > logins
    assert_no_secret(stack, new_password)
