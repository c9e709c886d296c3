"""Broken and fuzzed config files reach a running `llmsched up` through hot reload (issue 5, item 5).

Every broken file must be rejected as a whole by each process that watches it (poller, scraper, scorer), with
one ERROR line per problem naming its key path, while the config in force stays entirely in force: the published
config version, `/pools/status` and the decisions do not change. After the fuzz, a valid edit is still applied,
which proves the watchers survived every rejection.
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
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from llmsched.shared.config import load_config
from llmsched.shared.errors import ConfigError
from llmsched.shared.logging import escape

from tests.faults.config_mutations import broken_configs, dump
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


def expected_errors(stack: Stack, content: bytes) -> dict[str, list[str]] | None:
    """The errors `load_config` reports for `content` with the processes' environment; None when it is valid."""
    probe = stack.config_path.with_name("probe.yaml")
    probe.write_bytes(content)
    try:
        load_config(str(probe), stack.up.env)
    except ConfigError as exc:
        return exc.errors
    return None


def reject(stack: Stack, content: bytes, errors: dict[str, list[str]], baseline: tuple[Any, ...]) -> float:
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
    log = stack.output()[log_from:]
    for key in errors:
        for process in WATCHERS:  # a key with control characters is logged escaped (shared/logging.py)
            named = re.escape(escape(key))
            assert re.search(rf"\| {process} \| [^\n]* - config reload rejected: {named}: ", log), (
                f"{process} did not name {key}:\n{log}"
            )
    assert in_force(stack) == baseline
    stack.deciding()
    return took


def valid_edit_still_applies(stack: Stack, doc: dict[str, Any]) -> float:
    changed = {**doc, "pools": [{**doc["pools"][0], "fallback": {"pool_fallback": True}}]}
    started = time.monotonic()
    write_atomically(stack.config_path, dump(changed))
    wait_for("the valid edit to reach the decisions", lambda: stack.select().text == "fallback", 10)
    return time.monotonic() - started


FIXED = {
    "YAML syntax error": lambda doc: dump(doc) + b"pools: [\n",
    "wrong type": lambda doc: dump({**doc, "scheduler": {**doc["scheduler"], "metrics_fetch_interval": "fast"}}),
    "unknown key": lambda doc: dump({**doc, "f5": {**doc["f5"], "pasword_env": "X"}}),
    "missing section": lambda doc: dump({k: v for k, v in doc.items() if k != "pools"}),
    "bad pool value": lambda doc: dump({**doc, "pools": [{**doc["pools"][0], "engine_type": "xinference2"}]}),
}


def test_broken_config_files_are_rejected_with_key_paths_and_the_old_config_stays_in_force_quick(
    lab: Lab, record_figure: RecordFigure
) -> None:
    stack = lab.stack(watch_s=WATCH_S)
    doc = yaml.safe_load(stack.config_path.read_bytes())
    baseline = in_force(stack)
    took = []
    for name, make in FIXED.items():
        content = make(doc)
        errors = expected_errors(stack, content)
        assert errors, f"{name} should be invalid"
        took.append(reject(stack, content, errors, baseline))
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
        content = data.draw(broken_configs(doc))
        if content == seen[-1]:  # the same bytes twice are no change for a watcher; not an
            return  # assume(): `seen` changes between hypothesis's replays
        errors = expected_errors(stack, content)
        assume(errors is not None)  # a mutation that is still valid would rightly be applied
        reject(stack, content, errors, baseline)
        seen.append(content)
        kinds["YAML syntax" if "<file>" in errors else "schema"] += 1

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
