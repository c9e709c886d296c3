"""Mutations of a valid scheduler-config whose verdict is known in advance, for the config fuzz tests.

Each `Mutation` changes one thing and says what `load_config` must answer: the one error path it must report (a
wrong type, an unknown key, an out-of-range number, a missing required key, YAML that does not parse), or None
for a change that is still valid and must be accepted. The expectations are written here, by hand, from the
documented schema (docs/configuration.md), never asked of the code under test; a validation gap therefore shows
up as an invalid mutation that loads, and an over-strict rule as a valid one that does not.

Hypothesis composes them: one invalid mutation plus any number of valid ones must fail with exactly the invalid
one's path; valid ones alone must load.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from hypothesis import strategies as st

FILE = "<file>"  # the error path of problems with the file as a whole (YAML syntax)
Path = tuple[Any, ...]


def dump(doc: dict) -> bytes:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode()


def _set(path: Path, value: Any) -> Callable[[dict], dict]:
    def apply(doc: dict) -> dict:
        target = doc
        for step in path[:-1]:
            target = target.setdefault(step, {}) if isinstance(target, dict) else target[step]
        target[path[-1]] = value
        return doc

    return apply


def _delete(path: Path) -> Callable[[dict], dict]:
    def apply(doc: dict) -> dict:
        target = doc
        for step in path[:-1]:
            target = target[step]
        target.pop(path[-1], None)
        return doc

    return apply


def _key(path: Path) -> str:
    """("pools", 0, "metrics", "path") -> "pools[0].metrics.path", the form ConfigError uses."""
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


@dataclass(frozen=True)
class Mutation:
    name: str
    path: Path  # what it changes
    change: Callable[[dict], dict]
    error: str | None  # the path load_config must report; None: still valid

    def apply(self, doc: dict) -> dict:
        return self.change(copy.deepcopy(doc))

    def __repr__(self) -> str:
        return f"Mutation({self.name!r})"

    def overlaps(self, other: Mutation) -> bool:
        """Both change the same key, or one changes a parent of the other's (they cannot be combined)."""
        n = min(len(self.path), len(other.path))
        return self.path[:n] == other.path[:n]


def bad(path: Path, value: Any, why: str) -> Mutation:
    return Mutation(f"{_key(path)} = {value!r} ({why})", path, _set(path, value), _key(path))


def good(path: Path, value: Any) -> Mutation:
    return Mutation(f"{_key(path)} = {value!r}", path, _set(path, value), None)


def deleted(path: Path, error: str | None) -> Mutation:
    return Mutation(f"{_key(path)} removed", path, _delete(path), error)


S = ("scheduler",)
MODE = ("modes", 0)
POOL = ("pools", 0)

INVALID: tuple[Mutation, ...] = (
    # wrong types
    bad((*S, "metrics_fetch_interval"), "fast", "wrong type"),
    bad((*S, "metrics_fetch_interval"), 1.5, "milliseconds are an integer"),
    bad((*S, "metrics_fetch_interval"), True, "a boolean is not a number"),
    bad((*S, "pool_fetch_interval"), [5], "wrong type"),
    bad((*S, "stale_after"), "soon", "wrong type"),
    bad(("global", "api_port"), "http", "wrong type"),
    bad(("f5", "timeout"), {"s": 1}, "wrong type"),
    bad((*MODE, "w_a"), "heavy", "wrong type"),
    bad((*POOL, "engine_type"), 5, "wrong type"),
    bad((*POOL, "metrics", "timeout"), "1s", "wrong type"),
    bad((*POOL, "fallback", "pool_fallback"), "false", "a quoted false is not a boolean"),
    # out of range
    bad((*S, "metrics_fetch_interval"), 0, "must be > 0"),
    bad((*S, "pool_fetch_interval"), -5, "must be > 0"),
    bad((*S, "stale_after"), 0, "must be > 0"),
    bad((*S, "scrape_concurrency"), 0, "at least 1"),
    bad(("global", "api_port"), 70000, "not a port"),
    bad(("global", "api_port"), 0, "not a port"),
    bad(("f5", "port"), 65536, "not a port"),
    bad(("f5", "timeout"), 0, "must be > 0"),
    bad((*MODE, "w_a"), -0.1, "weights are >= 0"),
    bad((*MODE, "transition_point"), 0, "must be > 0"),
    bad((*MODE, "steepness"), -1, "must be > 0"),
    bad((*POOL, "metrics", "timeout"), 0, "must be > 0"),
    bad((*POOL, "fallback", "member_running_req_threshold"), -1, "at least 0"),
    # values outside a known set
    bad((*MODE, "name"), "s9", "unknown mode"),
    bad((*POOL, "engine_type"), "xinference2", "unknown engine"),
    bad((*POOL, "metrics", "path"), "metrics", "must start with /"),
    bad((*POOL, "name"), "", "must not be empty"),
    # unknown keys
    bad(("f5", "pasword_env"), "F5_PW", "unknown key"),
    bad(("schedular",), {"stale_after": 5}, "unknown section"),
    bad((*POOL, "engine"), "vllm", "unknown key"),
    bad((*MODE, "w_z"), 0.1, "unknown key"),
    # missing required keys
    deleted(("f5", "host"), "f5.host"),
    deleted(("f5", "password_env"), "f5.password_env"),
    deleted(("pools",), "pools"),
    deleted((*POOL, "name"), "pools[0].name"),
    deleted((*POOL, "engine_type"), "pools[0].engine_type"),
    bad(("pools",), [], "at least one pool"),
)

VALID: tuple[Mutation, ...] = (
    good((*S, "metrics_fetch_interval"), 2000),
    good((*S, "pool_fetch_interval"), 7.5),
    good((*S, "stale_after"), None),
    good((*S, "stale_after"), 30),
    good((*S, "scrape_concurrency"), 1),
    good(("global", "api_port"), 65535),
    good(("f5", "port"), 1),
    good(("f5", "timeout"), 3),
    good((*MODE, "w_a"), 0),
    good((*MODE, "w_b"), 1),
    good((*MODE, "name"), "s2_dynamic_waiting"),
    good((*MODE, "transition_point"), 0.5),
    good((*POOL, "engine_type"), "sglang"),
    good((*POOL, "partition"), "Tenant_A"),
    good((*POOL, "metrics", "path"), "/m"),
    good((*POOL, "metrics", "timeout"), 2),
    good((*POOL, "fallback", "pool_fallback"), True),
    good((*POOL, "fallback", "member_running_req_threshold"), 0),
    deleted((*POOL, "metrics"), None),  # every metrics key has a default
    good(("modes",), []),  # no scoring mode: valid, warned
)

# YAML that does not parse, appended to or spliced into a valid file: always a file-level error.
SYNTAX: tuple[tuple[str, Callable[[bytes], bytes]], ...] = (
    ("unclosed flow sequence", lambda text: text + b"extra: [1, 2\n"),
    ("tab indentation", lambda text: text + b"extra:\n\t- 1\n"),
    ("unclosed quote", lambda text: text + b"extra: 'unclosed\n"),
    ("mapping in a flow sequence closed wrong", lambda text: text + b"extra: {a: [1, 2}\n"),
    ("undefined alias", lambda text: text + b"extra: *nowhere\n"),
    ("stray colon line", lambda text: text + b"extra: a: b\n"),
)


def _compatible(drawn: list[Mutation], avoid: Mutation | None = None) -> list[Mutation]:
    """The drawn mutations that can be applied together (and with `avoid`): later overlapping ones are dropped."""
    kept: list[Mutation] = []
    for m in drawn:
        if not any(m.overlaps(k) for k in kept) and not (avoid is not None and m.overlaps(avoid)):
            kept.append(m)
    return kept


@dataclass(frozen=True)
class Case:
    """A file to load and the error paths it must produce (empty: it must load)."""

    content: bytes
    errors: frozenset[str]
    description: str


def invalid_files(doc: dict) -> st.SearchStrategy[Case]:
    """One invalid mutation, or one YAML syntax error, on top of up to three valid ones."""

    def schema(args: tuple[Mutation, list[Mutation]]) -> Case:
        broken, drawn = args
        extras = _compatible(drawn, broken)
        out = doc
        for m in extras:
            out = m.apply(out)
        out = broken.apply(out)
        what = "; ".join([broken.name, *(m.name for m in extras)])
        return Case(dump(out), frozenset({broken.error or ""}), what)

    def syntax(args: tuple[tuple[str, Callable[[bytes], bytes]], list[Mutation]]) -> Case:
        (name, edit), drawn = args
        extras = _compatible(drawn)
        out = doc
        for m in extras:
            out = m.apply(out)
        return Case(edit(dump(out)), frozenset({FILE}), f"YAML: {name}")

    extras = st.lists(st.sampled_from(VALID), max_size=3, unique_by=lambda m: m.name)
    return st.tuples(st.sampled_from(INVALID), extras).map(schema) | st.tuples(st.sampled_from(SYNTAX), extras).map(
        syntax
    )


def valid_files(doc: dict) -> st.SearchStrategy[Case]:
    """One to four valid mutations together: the file must load."""

    def build(drawn: list[Mutation]) -> Case:
        changes = _compatible(drawn)
        out = doc
        for m in changes:
            out = m.apply(out)
        return Case(dump(out), frozenset(), "; ".join(m.name for m in changes))

    return st.lists(st.sampled_from(VALID), min_size=1, max_size=4, unique_by=lambda m: m.name).map(build)
