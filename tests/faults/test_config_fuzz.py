"""Broken and fuzzed config files: `load_config` names the right key path, and a running `llmsched up` rejects
them on hot reload.

The mutations (config_mutations.py) carry their verdict, written by hand: an invalid one must fail with exactly
its error path, a valid one must load. First `load_config` is checked against every mutation and against
hypothesis's combinations of them (quick, in `make test`). Then the files reach a running stack: every broken
file must be rejected as a whole by each process that watches it (poller, scraper, scorer), with one ERROR line
per problem naming its key path, while the config in force stays entirely in force: the published config
version, `/pools/status` and the decisions do not change. After the fuzz, a valid edit is still applied, which
proves the watchers survived every rejection.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmsched.shared.config import load_config
from llmsched.shared.errors import ConfigError
from llmsched.shared.logging import escape

from tests.faults.config_mutations import INVALID, SYNTAX, VALID, Case, Mutation, dump, invalid_files, valid_files
from tests.faults.conftest import Lab, RecordFigure
from tests.faults.harness import wait_for
from tests.faults.stack import Stack

WATCHERS = ("poller", "scraper", "scorer")
REJECTED = re.compile(r"\| ERROR +\| (\w+) \| [^\n]* - config reload rejected: \S.* has \d+ problem")
WATCH_S = 0.2


def rejections(stack: Stack) -> Counter[str]:
    return Counter(m.group(1) for m in REJECTED.finditer(stack.output()))


def in_force(stack: Stack) -> tuple[Any, ...]:
    """What must not move while broken files come and go: config version, pool views, a decision's domain."""
    version = stack.redis.client().hget("llmsched:config", "version")
    pools = stack.pools_status()
    summary = [
        (p["name"], p["partition"], p["engine_type"], p["mode"], p["pool_fallback"], p["member_count"]) for p in pools
    ]
    return version, summary


def write_atomically(path: Path, content: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)


def reject(stack: Stack, content: bytes, errors: frozenset[str], baseline: tuple[Any, ...]) -> float:
    """Write a broken file; every watcher rejects it naming each key path; nothing changes. Seconds taken."""
    before, log_from = rejections(stack), stack.log_size()
    started = time.monotonic()
    write_atomically(stack.config_path, content)
    wait_for(
        "every watcher to reject the file",
        lambda: all(rejections(stack)[p] > before[p] for p in WATCHERS),
        10,
        every=0.02,
    )
    took = time.monotonic() - started
    # The lines naming each key follow the summary line; each process's stderr reaches up's log on its own
    # schedule, so wait for them rather than read the log at the moment the summaries are all there.
    unnamed = lambda: missing_names(stack.output()[log_from:], errors)
    try:
        wait_for("every watcher to name each key", lambda: not unnamed(), 10, every=0.02)
    except AssertionError:
        raise AssertionError(f"not named: {unnamed()}:\n{stack.output()[log_from:]}") from None
    assert in_force(stack) == baseline
    stack.deciding()
    return took


def missing_names(log: str, errors: frozenset[str]) -> list[tuple[str, str]]:
    """(process, key) pairs whose rejection line is not in `log`. A key with control characters is logged
    escaped (shared/logging.py)."""
    return [
        (process, key)
        for key in errors
        for process in WATCHERS
        if not re.search(rf"\| {process} \| [^\n]* - config reload rejected: {re.escape(escape(key))}: ", log)
    ]


def valid_edit_still_applies(stack: Stack, doc: dict[str, Any]) -> float:
    changed = {**doc, "pools": [{**doc["pools"][0], "fallback": {"pool_fallback": True}}]}
    started = time.monotonic()
    write_atomically(stack.config_path, dump(changed))
    wait_for("the valid edit to reach the decisions", lambda: stack.select().text == "fallback", 10)
    return time.monotonic() - started


# The quick stack test: one of each kind, with the error path each must produce.
FIXED = {
    "YAML syntax error": lambda doc: Case(dump(doc) + b"pools: [\n", frozenset({"<file>"}), "unclosed list"),
    "wrong type": lambda doc: _case(doc, "scheduler.metrics_fetch_interval = 'fast' (wrong type)"),
    "unknown key": lambda doc: _case(doc, "f5.pasword_env = 'F5_PW' (unknown key)"),
    "missing section": lambda doc: _case(doc, "pools removed"),
    "bad pool value": lambda doc: _case(doc, "pools[0].engine_type = 'xinference2' (unknown engine)"),
}


def _case(doc: dict, name: str) -> Case:
    (m,) = [m for m in INVALID if m.name == name]
    return Case(dump(m.apply(doc)), frozenset({m.error or ""}), m.name)


# A valid document without a stack: the file-independent parts of the faults stack's config.
BASE = {
    "global": {"interval": 0.5, "api_host": "127.0.0.1", "api_port": 8080, "log_level": "INFO"},
    "f5": {"host": "127.0.0.1", "port": 8443, "username": "admin", "password_env": "TEST_F5_PW", "timeout": 1.0},
    "redis": {"url": "redis://127.0.0.1:6379/0"},
    "scheduler": {"pool_fetch_interval": 0.5, "metrics_fetch_interval": 500},
    "modes": [{"name": "s1", "w_a": 0.5, "w_b": 0.5}],
    "pools": [{"name": "p", "partition": "Common", "engine_type": "vllm", "metrics": {"timeout": 0.25}}],
}
ENV = {"TEST_F5_PW": "secret"}


def load_errors(tmp: Path, content: bytes) -> frozenset[str]:
    """The error paths load_config reports for `content`; empty when it loads."""
    path = tmp / "scheduler-config.yaml"
    path.write_bytes(content)
    try:
        load_config(str(path), ENV)
    except ConfigError as exc:
        return frozenset(exc.errors)
    return frozenset()


def test_the_base_document_loads(tmp_path: Path) -> None:
    assert load_errors(tmp_path, dump(BASE)) == frozenset()


@pytest.mark.parametrize("mutation", INVALID, ids=lambda m: m.name)
def test_each_invalid_mutation_is_rejected_with_exactly_its_key_path(tmp_path: Path, mutation: Mutation) -> None:
    assert load_errors(tmp_path, dump(mutation.apply(BASE))) == {mutation.error}


@pytest.mark.parametrize("mutation", VALID, ids=lambda m: m.name)
def test_each_valid_mutation_is_accepted(tmp_path: Path, mutation: Mutation) -> None:
    assert load_errors(tmp_path, dump(mutation.apply(BASE))) == frozenset()


@pytest.mark.parametrize("edit", SYNTAX, ids=lambda e: e[0])
def test_yaml_that_does_not_parse_is_a_file_level_error(tmp_path: Path, edit) -> None:
    assert load_errors(tmp_path, edit[1](dump(BASE))) == {"<file>"}


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=invalid_files(BASE))
def test_an_invalid_change_among_valid_ones_is_reported_alone_at_its_path(tmp_path: Path, case: Case) -> None:
    assert load_errors(tmp_path, case.content) == case.errors, case.description


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=valid_files(BASE))
def test_valid_changes_together_load(tmp_path: Path, case: Case) -> None:
    assert load_errors(tmp_path, case.content) == frozenset(), case.description


def test_broken_config_files_are_rejected_with_key_paths_and_the_old_config_stays_in_force_quick(
    lab: Lab, record_figure: RecordFigure
) -> None:
    stack = lab.stack(watch_s=WATCH_S)
    doc = yaml.safe_load(stack.config_path.read_bytes())
    baseline = in_force(stack)
    took = []
    for make in FIXED.values():
        case = make(doc)
        took.append(reject(stack, case.content, case.errors, baseline))
    applied = valid_edit_still_applies(stack, doc)
    record_figure(
        "broken config on reload (5 kinds)",
        "rejected by poller, scraper, scorer with key paths; old config in force",
        max(took),
        "s",
        figure="slowest rejection by all three watchers",
    )
    record_figure(
        "valid config after the rejections",
        "still applied (watchers alive)",
        applied,
        "s",
        figure="file written -> decisions follow",
    )


@pytest.mark.faults
def test_fuzzed_config_files_are_all_rejected_with_key_paths_while_decisions_and_status_stay_unchanged(
    lab: Lab, record_figure: RecordFigure
) -> None:
    stack = lab.stack(watch_s=WATCH_S)
    original = stack.config_path.read_bytes()
    doc = yaml.safe_load(original)
    baseline = in_force(stack)
    seen: list[bytes] = [original]
    kinds: Counter[str] = Counter()

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much, HealthCheck.too_slow],
    )
    @given(st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(invalid_files(doc))
        if case.content == seen[-1]:  # the same bytes twice are no change for a watcher; not an
            return  # assume(): `seen` changes between hypothesis's replays
        reject(stack, case.content, case.errors, baseline)
        seen.append(case.content)
        kinds["YAML syntax" if "<file>" in case.errors else "schema"] += 1

    run()

    applied = valid_edit_still_applies(stack, doc)
    rejected = len(seen) - 1
    record_figure(
        "fuzzed config files on reload (hypothesis mutations)",
        "each rejected with key paths by every watcher; config version, status, decisions unchanged",
        rejected,
        "files",
        figure=", ".join(f"{k}: {n}" for k, n in sorted(kinds.items())),
    )
    record_figure("valid config after the fuzz", "still applied (watchers alive)", applied, "s")
    assert rejected >= 45
