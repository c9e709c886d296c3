"""Hot reload across processes, with real processes: `llmsched up` (poller, scraper, scorer,
API) watching one file every 2 s. An edit is taken by every watching process at the same wall-clock tick (the
spread of their "config reloaded" lines is measured); then a scorer started from a copy of the *older* file (its
modification time older) publishes at start and is refused: Redis keeps the newer config and its pools."""

from __future__ import annotations

import re
import shutil
import time
from datetime import datetime

import pytest
import yaml

from llmsched.shared.store import Store

from tests.faults.conftest import Lab, RecordFigure
from tests.faults.harness import wait_for
from tests.faults.stack import F5_PASSWORD_ENV
from tests.helpers import make_store

WATCH_S = 2.0
RELOADED = re.compile(r"^(\S+ \S+) \| INFO +\| (\w+) \| .* - config reloaded from ", re.MULTILINE)


@pytest.mark.faults
def test_every_process_takes_an_edit_at_the_same_tick_and_an_older_file_never_overwrites_it(
    lab: Lab, record_figure: RecordFigure
) -> None:
    stack = lab.stack(watch_s=WATCH_S)
    store: Store = make_store(stack.redis.url)
    old_copy = lab.tmp_path / "old-scheduler-config.yaml"
    shutil.copy2(stack.config_path, old_copy)  # keeps the older modification time
    old_version = store.config_version()
    doc = yaml.safe_load(stack.config_path.read_text())
    doc["modes"][0]["w_a"], doc["modes"][0]["w_b"] = 0.7, 0.3
    log_from = stack.log_size()
    time.sleep(0.05)  # a modification time visibly newer than the copy's
    stack.config_path.write_text(yaml.safe_dump(doc))
    lines = wait_for(
        "poller, scraper and scorer to reload",
        lambda: (found := RELOADED.findall(stack.output()[log_from:])) and len({p for _, p in found}) >= 3 and found,
        4 * WATCH_S,
        every=0.05,
    )
    stamps = {proc: datetime.strptime(at, "%Y-%m-%d %H:%M:%S.%f").timestamp() for at, proc in lines}
    spread = max(stamps.values()) - min(stamps.values())
    new_version = store.config_version()
    assert new_version != old_version and store.pool_config("fault_pool:Common")["weights"]["w_a"] == 0.7

    late = lab.process(
        ["scorer", "--config", str(old_copy)], "late-scorer.log", **{F5_PASSWORD_ENV: stack.bigip.password}
    )
    refused = wait_for("the late scorer to be refused", lambda: "not publishing config version" in late.output(), 30)
    assert refused
    assert store.config_version() == new_version
    assert store.pool_config("fault_pool:Common")["weights"]["w_a"] == 0.7
    record_figure(
        "config edited under 3 watching processes (interval 2 s)",
        "all take it at the same tick; an older file never overwrites it",
        spread,
        "s spread",
        figure=f"reloads {sorted(stamps)}; older-file publisher refused",
    )
    assert spread < WATCH_S / 4  # the same tick; each on its own timer, they were up to an interval apart
    stack.deciding()
