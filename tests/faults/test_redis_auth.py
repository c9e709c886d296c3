"""The whole scheduler (`llmsched up`: poller, scraper, scorer, API) against a Sentinel that has its own password,
watching a master that requires a password, as an ACL user limited to llmsched's and rq's keys.
Before, `redis.password` was an unknown key and the API's environment had only the sentinels: every decision was
`none`. Now every process, the API's gunicorn workers included, authenticates to both, and no password reaches a
log line."""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import Lab, RecordFigure
from tests.faults.emulated import POOL
from tests.shared.secure_redis import SecureRedis
from tests.shared.test_redis_auth import ACL_USER, MASTER_PW, SENTINEL_PW, USER_PW


@pytest.mark.faults
def test_up_through_a_password_protected_sentinel_as_an_acl_user_picks_members(
    lab: Lab, record_figure: RecordFigure
) -> None:
    master = SecureRedis([f"requirepass {MASTER_PW}", ACL_USER], {"password": MASTER_PW}).start()
    lab.add_cleanup(master.close)
    sentinel = SecureRedis(
        [
            f"requirepass {SENTINEL_PW}",
            f"sentinel monitor mymaster 127.0.0.1 {master.port} 1",
            f"sentinel auth-pass mymaster {MASTER_PW}",
        ],
        {"password": SENTINEL_PW},
        sentinel=True,
    ).start()
    lab.add_cleanup(sentinel.close)
    deadline = time.monotonic() + 10
    while not sentinel.client().execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    engines = lab.engines(3)
    bigip = lab.bigip({POOL: [e.member for e in engines]})
    section = {
        "sentinels": [f"127.0.0.1:{sentinel.port}"],
        "master_name": "mymaster",
        "username": "llmsched",
        "password_env": "FAULTS_REDIS_USER_PW",
        "sentinel_password_env": "FAULTS_SENTINEL_PW",
    }
    started = time.monotonic()
    stack = lab.up(
        bigip,
        engines,
        master,  # type: ignore[arg-type]  # the stack only needs it to outlive the test
        sentinel=section,
        env={"FAULTS_REDIS_USER_PW": USER_PW, "FAULTS_SENTINEL_PW": SENTINEL_PW},
    )
    ready = time.monotonic() - started
    picks = stack.picks(40)
    record_figure(
        "Redis behind a Sentinel with passwords, as an ACL user",
        "every process authenticates; decisions pick members",
        picks["none"],
        "none of 40",
        figure=f"stack eligible after {ready:.1f} s",
    )
    stack.assert_picks(picks)
    assert " exited (" not in stack.output()
    assert not any(pw in stack.output() for pw in (MASTER_PW, SENTINEL_PW, USER_PW))
