"""The project's exception hierarchy: one base class, one subclass per kind of failure."""

from __future__ import annotations


class LLMSchedError(Exception):
    """Base class of every error raised on purpose by llmsched."""


class ConfigError(LLMSchedError):
    """A configuration file is unreadable or invalid.

    `errors` maps a key path (``pools[1].engine_type``) to the list of problems found there.
    """

    def __init__(self, errors: dict[str, list[str]], source: str = "") -> None:
        self.errors = errors
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        where = f"{self.source}: " if self.source else ""
        lines = [f"{path}: {msg}" for path, msgs in sorted(self.errors.items()) for msg in msgs]
        return where + "invalid configuration\n  " + "\n  ".join(lines)


class StoreError(LLMSchedError):
    """Redis could not be reached or answered with something unusable."""


class F5Error(LLMSchedError):
    """BIG-IP iControl REST answered with an error or could not be reached."""


class ScrapeError(LLMSchedError):
    """An engine's /metrics endpoint could not be read or parsed."""
