"""Secrets never leave the process that needs them: a full `llmsched up` run, with DEBUG logs
and access logs on, through the failures that make error texts (refused BIG-IP tokens, a refused BIG-IP login,
BIG-IP down, engines refusing the metrics credentials, a broken config file whose broken line holds the API key),
then a grep of everything the processes wrote or answered: their stdout and stderr, every Redis key and value,
every status / health / metrics / what-if response, and their command lines.

The secrets: the BIG-IP password, every token the emulated BIG-IP issued (recorded by the emulator, including
tokens deleted since), a metrics Bearer key and a metrics basic-auth password, each in its raw, base64 and
URL-encoded forms (and the Basic `user:password` pairs base64-encoded, as on the wire).
"""

from __future__ import annotations

import secrets
import time

import pytest
import yaml

from tests.faults.conftest import Lab, RecordFigure
from tests.faults.emulated import POOL
from tests.faults.harness import wait_for
from tests.faults.secret_audit import api_responses, basic_pairs, command_lines, leaks, redis_dump
from tests.faults.stack import Stack

POOL_B = "fault_pool_basic"
METRIC_USER = "scraper-user"
METRIC_PWD_ENV = "FAULTS_METRIC_PWD"


def status_error(stack: Stack, pool: str) -> str | None:
    return stack.status(pool).get("bigip_error")


def member_failing(stack: Stack, pool: str) -> bool:
    return any(m["scrape_status"] == "error" for m in stack.status(pool).get("members", []))


def exercise_the_failure_paths(stack: Stack, bearer: str) -> None:
    bigip, bearer_engine, basic_engine = stack.bigip, stack.engines[0], stack.engines[-1]
    bigip.admin("POST", "/tokens/revoke", {})  # 401 -> one re-login
    wait_for("a new token", lambda: len(bigip.state.issued) >= 2, 5)
    bigip.admin("POST", "/users", {"username": "admin", "password": "not-the-configured-one"})
    bigip.admin("POST", "/tokens/revoke", {})  # refused login
    wait_for("the refused login in status", lambda: status_error(stack, POOL), 5)
    bigip.admin("POST", "/users", {"username": "admin", "password": bigip.password})
    wait_for("BIG-IP read again", lambda: status_error(stack, POOL) is None, 5)
    bigip.stop()  # connection refused
    wait_for("BIG-IP unreachable in status", lambda: status_error(stack, POOL), 5)
    bigip.start()
    wait_for("BIG-IP read again", lambda: status_error(stack, POOL) is None, 5)
    bearer_engine.admin("/engine", {"api_key": "another-key"})  # 401 on /metrics
    basic_engine.admin("/engine", {"basic_auth": [METRIC_USER, "another-pw"]})
    wait_for("the refused scrapes in status", lambda: member_failing(stack, POOL) and member_failing(stack, POOL_B), 5)
    bearer_engine.admin("/engine", {"api_key": bearer})
    basic_engine.admin("/engine", {"basic_auth": [METRIC_USER, stack.up.env[METRIC_PWD_ENV]]})
    wait_for("the scrapes to work again", lambda: stack.all_eligible(POOL, 2) and stack.all_eligible(POOL_B, 2), 5)
    # A broken config whose broken line is the API key itself: the rejection must not quote it.
    text = stack.config_path.read_text()
    stack.config_path.write_text(text.replace(f"APIkey: {bearer}", f"APIkey: '{bearer}\n  x: [", 1))
    time.sleep(1.5)
    stack.config_path.write_text(text)
    doc = yaml.safe_load(text)
    doc["pools"][0]["metrics"]["APIkey"] = [bearer, {"nested": bearer}]  # wrong type holding the key
    stack.config_path.write_text(yaml.safe_dump(doc))
    time.sleep(1.5)
    stack.config_path.write_text(text)
    time.sleep(1.0)


@pytest.mark.faults
def test_no_secret_appears_in_logs_redis_api_answers_or_command_lines_after_a_run_through_failures(
    lab: Lab, record_figure: RecordFigure
) -> None:
    f5_password = "F5pw-" + secrets.token_hex(12)
    bearer = "bearer-" + secrets.token_hex(12)
    basic_password = "basic-" + secrets.token_hex(12)
    engines = lab.engines(2, api_key=bearer) + lab.engines(2, basic_auth=(METRIC_USER, basic_password))
    layout = {POOL: [e.member for e in engines[:2]], POOL_B: [e.member for e in engines[2:]]}
    bigip = lab.bigip(layout, password=f5_password)
    stack = lab.up(
        bigip,
        engines,
        lab.redis(),
        pool_members=layout,
        pools={POOL: {"APIkey": bearer}, POOL_B: {"metric_user": METRIC_USER, "metric_pwd_env": METRIC_PWD_ENV}},
        env={METRIC_PWD_ENV: basic_password, "LLMSCHED_ACCESS_LOG": "1"},
        extra={"global": {"log_level": "DEBUG"}},
    )
    exercise_the_failure_paths(stack, bearer)

    places = {"stdout+stderr of every process (up.log)": stack.output().encode()}
    places.update(redis_dump(stack.redis.client()))
    places.update(api_responses(stack))
    places.update(command_lines(stack.up.pid))
    known = {
        "BIG-IP password": f5_password,
        "metrics Bearer key": bearer,
        "metrics basic-auth password": basic_password,
        **{f"BIG-IP token #{i + 1}": t for i, t in enumerate(bigip.state.issued)},
        **basic_pairs([("admin", f5_password), (METRIC_USER, basic_password)]),
    }
    found = leaks(known, places)
    # Positive control: the grep does reach every kind of place (a member id is written to all of them).
    reached = {place.split(" ")[0] for place in places if engines[0].member.encode() in places[place]}
    assert {"stdout+stderr", "GET", "POST"} <= reached and any(p.startswith("llmsched:") for p in reached), reached
    log_lines = stack.output().count("\n")
    redis_keys = sum(1 for p in places if p.startswith("llmsched") or p.startswith("rq:"))
    record_figure(
        "secrets audit (full `up` run through failures, DEBUG logs)",
        "no BIG-IP password, token, metrics key or password anywhere",
        len(found),
        "leaks",
        figure=f"{len(known)} secrets x 3 forms in {log_lines} log lines, {redis_keys} Redis keys, "
        f"{len(places) - redis_keys - 1} answers/cmdlines",
    )
    assert len(bigip.state.issued) >= 3, "the run should have gone through several tokens"
    assert "DEBUG" in stack.output() and "config reload rejected" in stack.output()
    assert found == [], "\n".join(found)
