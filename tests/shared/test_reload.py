"""Tests of llmsched.shared.reload.ConfigWatcher with real files (and a real Redis for publishing)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from loguru import logger

from llmsched.shared.config import load_config
from llmsched.shared.config_model import Config
from llmsched.shared.publish import publish_config
from llmsched.shared.reload import ConfigWatcher

from tests.helpers import make_store

ENV = {"F5_PW": "not-logged-secret"}


def doc(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "global": {"interval": 0.05, "api_port": 8080},
        "f5": {"host": "127.0.0.1", "password_env": "F5_PW"},
        "scheduler": {"pool_fetch_interval": 10, "metrics_fetch_interval": 5000},
        "modes": [{"name": "s1", "w_a": 0.5, "w_b": 0.5}],
        "pools": [{"name": "p1", "engine_type": "vllm", "fallback": {"pool_fallback": False}}],
    }
    for path, value in changes.items():
        node = data
        *parents, last = path.split("__")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = value
    return data


def write(path: Path, data: Any) -> None:
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data, encoding="utf-8")
    # Make sure the mtime moves even on coarse clocks, so the tests never depend on timing.
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.fixture()
def logs() -> Iterator[list[tuple[str, str]]]:
    records: list[tuple[str, str]] = []
    sink = logger.add(lambda m: records.append((m.record["level"].name, m.record["message"])), level="DEBUG")
    yield records
    logger.remove(sink)


class Recorder:
    def __init__(self) -> None:
        self.applied: list[Config] = []
        self.published: list[Config] = []

    def watcher(self, path: Path) -> ConfigWatcher:
        return ConfigWatcher(path, load_config(path, ENV), self.applied.append, self.published.append, env=ENV)


def test_valid_change_is_applied_then_published_and_becomes_the_config_in_force(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    write(path, doc())
    rec = Recorder()
    w = rec.watcher(path)
    assert w.check() is None and rec.applied == []  # nothing changed yet
    write(path, doc(pools__0__fallback__pool_fallback=True, modes__0__name="s2", scheduler__pool_fetch_interval=1))
    new = w.check()
    assert new is not None and rec.applied == [new] and rec.published == [new]
    assert w.config is new
    assert new.pools[0].fallback.pool_fallback is True
    assert new.mode.name == "s2" and new.scheduler.pool_fetch_interval == 1


def test_callback_sees_the_old_config_as_the_watchers_until_it_returns(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    write(path, doc())
    seen = []
    w = ConfigWatcher(
        path, load_config(path, ENV), lambda new: seen.append((w.config.mode.name, new.mode.name)), env=ENV
    )
    write(path, doc(modes__0__name="s2"))
    w.check()
    assert seen == [("s1", "s2")]


def test_invalid_change_is_rejected_with_every_path_named_error_and_the_old_config_kept(
    tmp_path: Path, logs: list[tuple[str, str]]
) -> None:
    path = tmp_path / "c.yaml"
    write(path, doc())
    rec = Recorder()
    w = rec.watcher(path)
    old = w.config
    # Two problems in one file, one of them next to a valid change: nothing of it may be applied.
    write(path, doc(pools__0__engine_type="xinference2", modes__0__name="s9", pools__0__fallback__pool_fallback=True))
    assert w.check() is None
    assert rec.applied == [] and rec.published == [] and w.config is old
    errors = [msg for level, msg in logs if level == "ERROR"]
    assert any("pools[0].engine_type" in m for m in errors), errors
    assert any("modes[0].name" in m for m in errors), errors
    assert not any(ENV["F5_PW"] in m for _, m in logs)


def test_rejected_file_is_not_retried_until_it_changes_again(tmp_path: Path, logs: list[tuple[str, str]]) -> None:
    path = tmp_path / "c.yaml"
    write(path, doc())
    rec = Recorder()
    w = rec.watcher(path)
    write(path, "pools: [not: valid: yaml")
    w.check()
    errors_after_first = sum(1 for level, _ in logs if level == "ERROR")
    assert errors_after_first >= 2 and any("YAML syntax error" in m for _, m in logs)
    w.check()
    w.check()
    assert sum(1 for level, _ in logs if level == "ERROR") == errors_after_first
    write(path, doc(modes__0__name="s2"))
    assert w.check() is not None and w.config.mode.name == "s2"


def test_touch_or_rewrite_with_the_same_content_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    write(path, doc())
    rec = Recorder()
    w = rec.watcher(path)
    write(path, doc())  # same bytes, newer mtime
    os.utime(path)  # plain touch
    assert w.check() is None and w.check() is None
    assert rec.applied == []


def test_content_change_with_an_unchanged_mtime_is_still_seen(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    write(path, doc())
    st = os.stat(path)
    rec = Recorder()
    w = rec.watcher(path)
    path.write_text(yaml.safe_dump(doc(modes__0__name="s2")), encoding="utf-8")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert w.check() is not None and w.config.mode.name == "s2"


def test_api_port_and_host_changes_are_logged_as_needing_a_restart(tmp_path: Path, logs: list[tuple[str, str]]) -> None:
    path = tmp_path / "c.yaml"
    write(path, doc())
    rec = Recorder()
    w = rec.watcher(path)
    changed = doc(global__api_port=9090, modes__0__name="s2")
    changed["global"]["api_host"] = "127.0.0.1"
    write(path, changed)
    assert w.check() is not None
    warnings = [m for level, m in logs if level == "WARNING"]
    assert any("global.api_port" in m and "restart" in m for m in warnings), warnings
    assert any("global.api_host" in m and "restart" in m for m in warnings), warnings
    assert rec.applied[0].mode.name == "s2"  # the rest of the change is applied


def test_a_callback_that_fails_leaves_the_old_config_in_force(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    write(path, doc())
    published: list[Config] = []

    def refuse(_new: Config) -> None:
        raise RuntimeError("cannot apply")

    w = ConfigWatcher(path, load_config(path, ENV), refuse, published.append, env=ENV)
    old = w.config
    write(path, doc(modes__0__name="s2"))
    assert w.check() is None and w.config is old and published == []


def test_deleted_file_keeps_the_config_and_its_return_with_the_same_content_changes_nothing(
    tmp_path: Path, logs: list[tuple[str, str]]
) -> None:
    path = tmp_path / "c.yaml"
    write(path, doc())
    rec = Recorder()
    w = rec.watcher(path)
    original = path.read_text()
    path.unlink()
    assert w.check() is None
    assert any(level == "ERROR" and "file not found" in m for level, m in logs)
    path.write_text(original)
    assert w.check() is None and rec.applied == []


def test_valid_change_is_published_to_redis(tmp_path: Path, redis_url: str) -> None:
    store = make_store(redis_url)
    path = tmp_path / "c.yaml"
    write(path, doc())
    config = load_config(path, ENV)
    publish_config(store, config, "test")
    w = ConfigWatcher(path, config, lambda new: None, lambda new: publish_config(store, new, "test"), env=ENV)
    write(path, doc(pools__0__fallback__pool_fallback=True, modes__0__name="s2"))
    assert w.check() is not None
    cfg = store.pool_config("p1:Common")
    assert cfg["pool_fallback"] is True and cfg["mode"] == "s2"


async def test_run_async_applies_changes_on_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    write(path, doc())
    applied = asyncio.Event()
    loop_thread: list[int] = []

    async def on_change(new: Config) -> None:  # a coroutine callback is awaited
        loop_thread.append(threading.get_ident())
        applied.set()

    w = ConfigWatcher(path, load_config(path, ENV), on_change, env=ENV)
    task = asyncio.create_task(w.run_async())
    try:
        write(path, doc(modes__0__name="s2"))
        await asyncio.wait_for(applied.wait(), 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert loop_thread == [threading.get_ident()] and w.config.mode.name == "s2"


def test_thread_applies_changes_until_stopped(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    write(path, doc())
    applied = threading.Event()
    w = ConfigWatcher(path, load_config(path, ENV), lambda new: applied.set(), env=ENV)
    stop = threading.Event()
    thread = threading.Thread(target=w.run_until, args=(stop,), daemon=True)
    thread.start()
    try:
        write(path, doc(modes__0__name="s2"))
        assert applied.wait(10)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_interval_follows_the_config_in_force(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    write(path, doc())
    w = ConfigWatcher(path, load_config(path, ENV), lambda new: None, env=ENV)
    assert w.interval == 0.05
    write(path, doc(global__interval=7))
    w.check()
    assert w.interval == 7
