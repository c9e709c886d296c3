"""What `llmsched demo` reads back from `up`'s log for its screen: the Redis `up` started, and config reloads.

`up` writes its own banner (API, Redis, config) and every child's log lines into up.log. Each watching process
(poller, scraper, scorer) logs the same reload verdict; the demo shows the poller's, once per reload.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

_REDIS = re.compile(r"llmsched up: API on \S+ .*?; Redis (?:private )?(\S+?);")
# "... | INFO     | poller | module:function:line - config reloaded from PATH: changed X"
_LINE = re.compile(r"\| (?:INFO|WARNING|ERROR) +\| poller \| [^\n]*? - (config reload(?:ed from| rejected:) .*)$")
_ACCEPTED = re.compile(r"config reloaded from \S+: changed (.*)")
_REJECTED_SUMMARY = re.compile(r"config reload rejected: \S+ has (\d+) problem")
_REJECTED_DETAIL = re.compile(r"config reload rejected: (.*)")


def reload_event(message: str) -> str | None:
    """One screen line for a reload log message of the poller; None for other messages."""
    if m := _ACCEPTED.match(message):
        return f"config reload ACCEPTED: changed {m.group(1)}"
    if m := _REJECTED_SUMMARY.match(message):
        return f"config reload REJECTED ({m.group(1)} problem(s)); the configuration in force is kept:"
    if m := _REJECTED_DETAIL.match(message):
        return f"    {m.group(1)}"
    return None


class UpLog:
    """Reads up.log incrementally: whole lines only, from where the last read stopped."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.offset = 0
        self._partial = b""

    def _new_lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        return [line.decode(errors="replace") for line in lines]

    def redis_url(self, timeout: float = 20.0) -> str | None:
        """The Redis URL from up's banner (its private redis-server); None if it does not appear in time. Reads the
        file from its start, independently of `reloads`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if m := _REDIS.search(self.path.read_text(errors="replace")):
                    return m.group(1)
            except FileNotFoundError:
                pass
            time.sleep(0.1)
        return None

    def reloads(self) -> list[str]:
        """Screen lines for the config reloads logged since the last call."""
        events = []
        for line in self._new_lines():
            if (m := _LINE.search(line)) and (event := reload_event(m.group(1))):
                events.append(event)
        return events
