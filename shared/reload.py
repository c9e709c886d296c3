"""Hot reload of the config file: notice a change, validate the whole file, hand the new Config to the process.

`ConfigWatcher` checks the file every `global.interval` seconds (read from the config in force, so a reload can
change it), at the multiples of the interval on the wall clock (`next_check_in`): every process with the same
interval checks at the same instants, so all of them take a new file at the same tick (apart from clock skew),
not up to an interval apart. Publishing is ordered by the file's change time (ctime) (shared/publish.py), so a
process still on the older file never overwrites the newer one in Redis. The content hash decides, not the mtime
alone: a `touch` or a rewrite with the same bytes is no change, and an edit that keeps the mtime (coarse clocks,
a Kubernetes ConfigMap's symlink swap) is still seen.

* A valid change: `load_config`, then `on_change(new)` (the process applies it: pools, intervals, mode, weights,
  thresholds, fallback flags, engine keys), then `publish(new)` (usually `publish_config`), then the new config is
  the one in force. Keys that only a restart applies (`global.api_host`/`api_port`, `redis.*`) are logged.
* An invalid change: every `path: message` of the `ConfigError` is logged at ERROR and nothing else happens: the
  old config stays entirely in force, because the new one is never handed out half-validated. The same bad
  content is not retried; the next change to the file is.
* `on_change` raising (the process could not apply it) is logged and the old config stays the watcher's.

Use `check()` from anywhere, `run_async()` as an asyncio task (file reading runs in a thread, the callback on the
event loop, so it may touch loop-owned objects or be a coroutine), or `run_until(stop)` in a thread of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import fields

from loguru import logger

from llmsched.shared.config import load_config
from llmsched.shared.config_fields import mask_url
from llmsched.shared.config_model import Config
from llmsched.shared.errors import ConfigError
from llmsched.shared.telemetry import config_reload

OnChange = Callable[[Config], None | Awaitable[None]]
Publish = Callable[[Config], object]

# Keys read once at process start: a change is reported, not applied.
RESTART_ONLY: tuple[tuple[str, str], ...] = (
    ("global_", "api_host"),
    ("global_", "api_port"),
    ("redis", "url"),
    ("redis", "namespace"),
    ("redis", "socket_timeout"),
    ("redis", "sentinels"),
    ("redis", "master_name"),
    ("telemetry", "host"),
    ("telemetry", "poller_port"),
    ("telemetry", "scraper_port"),
    ("telemetry", "scorer_port"),
)
_SECTION_NAMES = {"global_": "global"}


def next_check_in(interval: float, now: float) -> float:
    """Seconds from `now` (epoch s) to the next wall-clock multiple of `interval`: the instant every process checks."""
    wait = interval - (now % interval)
    return wait if wait > 1e-3 else wait + interval  # just past a tick (a fast loop): the next one, still aligned


def file_digest(path: str) -> str | None:
    """sha256 of the file's bytes; None when it cannot be read (load_config will say why)."""
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return None


def changed_sections(old: Config, new: Config) -> list[str]:
    skip = {"source", "warnings", "generation"}
    return [
        _SECTION_NAMES.get(f.name, f.name)
        for f in fields(Config)
        if f.name not in skip and getattr(old, f.name) != getattr(new, f.name)
    ]


def pool_changes(old: Config, new: Config) -> tuple[list[str], list[str], list[str]]:
    """(added, removed, changed) pool keys."""
    before = {p.key: p for p in old.pools}
    after = {p.key: p for p in new.pools}
    return (
        [k for k in after if k not in before],
        [k for k in before if k not in after],
        [k for k in after if k in before and after[k] != before[k]],
    )


def restart_needed(old: Config, new: Config) -> list[str]:
    """Messages for changed keys that the running process keeps at their old value."""
    out = []
    for section, key in RESTART_ONLY:
        a, b = getattr(getattr(old, section), key), getattr(getattr(new, section), key)
        if a != b:
            if key == "url":
                a, b = (mask_url(str(v)) if v else v for v in (a, b))
            out.append(
                f"{_SECTION_NAMES.get(section, section)}.{key} changed from {a!r} to {b!r}: "
                f"takes effect only after a restart of this process"
            )
    return out


class ConfigWatcher:
    """Watches one config file and applies valid changes through `on_change` (see the module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        config: Config,
        on_change: OnChange,
        publish: Publish | None = None,
        env: Mapping[str, str] | None = None,
        process: str = "",
    ) -> None:
        self.path = os.fspath(path)
        self.config = config
        self.on_change = on_change
        self.publish = publish
        self.env = env
        self.process = process
        # The content in force, and the last content looked at (a rejected file is not retried until it changes).
        self._applied = file_digest(self.path)
        self._seen = self._applied
        self._loaded = self._applied  # digest of the content `poll` last returned a Config for

    @property
    def interval(self) -> float:
        return float(self.config.global_.interval)

    # --- the two halves of a check: detect + validate (no side effects), then apply ----------------------------
    def poll(self) -> Config | None:
        """A new, valid config when the file's content changed since the last look; else None."""
        digest = file_digest(self.path)
        if digest == self._seen:
            return None
        self._seen = digest
        if digest is not None and digest == self._applied:
            logger.info("{} is back to the configuration in force; nothing to reload", self.path)
            return None
        try:
            new = load_config(self.path, self.env)
        except ConfigError as exc:
            config_reload("rejected")
            logger.error(
                "config reload rejected: {} has {} problem(s); the configuration in force is kept "
                "unchanged (the file is checked again when it changes)",
                self.path,
                sum(len(m) for m in exc.errors.values()),
            )
            for key, messages in sorted(exc.errors.items()):
                for message in messages:
                    logger.error("config reload rejected: {}: {}", key, message)
            return None
        self._loaded = digest
        return new

    def _describe(self, new: Config) -> None:
        old = self.config
        sections = changed_sections(old, new)
        added, removed, changed = pool_changes(old, new)
        detail = "".join(
            f"; pools {what}: {', '.join(keys)}"
            for what, keys in (("added", added), ("removed", removed), ("changed", changed))
            if keys
        )
        logger.info(
            "config reloaded from {}: changed {}{}", self.path, ", ".join(sections) or "nothing that matters", detail
        )
        for message in restart_needed(old, new):
            logger.warning("config reload: {}", message)
        for warning in new.warnings:
            logger.warning("config: {}", warning)

    def _commit(self, new: Config) -> None:
        self._applied = self._loaded
        self.config = new

    def apply(self, new: Config) -> bool:
        """Hand `new` to the process, then publish it; False (old config kept) when the process refused it."""
        self._describe(new)
        try:
            result = self.on_change(new)
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()
                raise TypeError("on_change returned an awaitable: use run_async() / apply_async()")
        except Exception:
            config_reload("rejected")
            logger.exception(
                "config reload from {} could not be applied; the configuration in force is kept", self.path
            )
            return False
        config_reload("applied")
        self._commit(new)
        self._publish(new)
        return True

    async def apply_async(self, new: Config) -> bool:
        self._describe(new)
        try:
            result = self.on_change(new)
            if inspect.isawaitable(result):
                await result
        except Exception:
            config_reload("rejected")
            logger.exception(
                "config reload from {} could not be applied; the configuration in force is kept", self.path
            )
            return False
        config_reload("applied")
        self._commit(new)
        if self.publish is not None:
            await asyncio.to_thread(self._publish, new)
        return True

    def _publish(self, new: Config) -> None:
        if self.publish is None:
            return
        try:
            self.publish(new)
        except Exception as exc:  # Redis down: the next start or reload publishes again
            logger.error("config reloaded but not published to Redis: {}: {}", type(exc).__name__, exc)

    def check(self) -> Config | None:
        """One synchronous check; the new config when one was applied."""
        new = self.poll()
        if new is not None and self.apply(new):
            return new
        return None

    # --- loops ---------------------------------------------------------------------------------------------
    async def run_async(self) -> None:
        """Check every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(next_check_in(self.interval, time.time()))
            try:
                new = await asyncio.to_thread(self.poll)
                if new is not None:
                    await self.apply_async(new)
            except asyncio.CancelledError:
                raise
            except Exception:  # a watcher that dies silently would freeze the config: log and go on
                logger.exception("config watcher: unexpected error checking {}", self.path)

    def run_until(self, stop: threading.Event) -> None:
        while not stop.wait(next_check_in(self.interval, time.time())):
            try:
                self.check()
            except Exception:
                logger.exception("config watcher: unexpected error checking {}", self.path)
