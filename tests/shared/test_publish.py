"""Ordered publishing of the routing config: a process on an older file never overwrites the
config of a newer one (nor deletes the pools only the newer one has), and every watcher checks at the same
wall-clock instants. Against a real Redis, with real files whose modification times order them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from llmsched.shared.config import load_config
from llmsched.shared.publish import publish_config
from llmsched.shared.reload import next_check_in

from tests.helpers import make_store
from tests.shared.config_cases import ENV, minimal


def config_file(path: Path, pools: list[str], mtime: float):
    """A config file written now (its generation is the kernel's change time: written later, newer), with the
    given modification time (what `cp -p` or `rsync -t` would leave)."""
    doc = {**minimal(), "pools": [{"name": name, "engine_type": "vllm"} for name in pools]}
    path.write_text(yaml.safe_dump(doc))
    os.utime(path, (mtime, mtime))
    return load_config(path, ENV)


def test_a_rollback_copy_that_keeps_an_older_modification_time_is_published(redis_url: str, tmp_path: Path) -> None:
    store = make_store(redis_url)
    current = config_file(tmp_path / "current.yaml", ["a", "b"], 1_700_000_060)
    publish_config(store, current, "poller")
    backup = config_file(tmp_path / "backup.yaml", ["a"], 1_700_000_000)  # restored with `cp -p`: an old mtime
    assert publish_config(store, backup, "poller") == store.config_version()
    assert store.pool_keys() == ["a:Common"]


def test_a_publisher_on_an_older_file_never_overwrites_the_newer_config(redis_url: str, tmp_path: Path) -> None:
    store = make_store(redis_url)
    old = config_file(tmp_path / "old.yaml", ["a"], 1_700_000_000)
    new = config_file(tmp_path / "new.yaml", ["a", "b"], 1_700_000_060)
    assert new.generation > old.generation
    version = publish_config(store, new, "poller")
    assert store.pool_keys() == ["a:Common", "b:Common"]
    # A process still on the old file republishes (a watchdog restore): refused, and it learns the newer version.
    assert publish_config(store, old, "scorer") == version
    assert store.pool_keys() == ["a:Common", "b:Common"]
    assert store.pool_config("b:Common") is not None and store.config_version() == version


def test_the_same_file_republishes_and_a_newer_one_replaces_the_older(redis_url: str, tmp_path: Path) -> None:
    store = make_store(redis_url)
    old = config_file(tmp_path / "old.yaml", ["a", "gone"], 1_700_000_000)
    publish_config(store, old, "poller")
    assert publish_config(store, old, "scorer") == store.config_version()  # equal generation: same file, accepted
    new = config_file(tmp_path / "new.yaml", ["a"], 1_700_000_060)
    assert publish_config(store, new, "scraper") == store.config_version()
    assert store.pool_keys() == ["a:Common"] and store.pool_config("gone:Common") is None


@pytest.mark.parametrize("interval", [0.5, 1.0, 7.0, 60.0])
@pytest.mark.parametrize("now", [1_700_000_000.0, 1_700_000_000.123, 1_700_000_059.999])
def test_every_watcher_checks_at_the_same_wall_clock_multiples_of_the_interval(interval: float, now: float) -> None:
    wait = next_check_in(interval, now)
    assert 0 < wait <= interval + 1e-3
    assert min((now + wait) % interval, interval - (now + wait) % interval) < 1e-6
