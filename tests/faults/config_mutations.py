"""Hypothesis strategies that break a valid scheduler-config: wrong types, unknown keys, missing keys and
sections, out-of-range values, and YAML that does not parse. Each yields the bytes of a whole file."""

from __future__ import annotations

import copy
from typing import Any

import yaml
from hypothesis import strategies as st

Path = tuple[Any, ...]
WRONG_VALUES = st.sampled_from(
    [None, "abc", "", -1, 0, -0.5, 10**12, True, [], {}, [1, 2], {"x": 1}, "1e309", "\u2603", 3.7]
)
KEY_NAMES = st.sampled_from(
    ["unknown", "Pool_name", "api-port", "w_z", "metric_pwd", "password", "APIKEY", "stale_after_s", "ùñí"]
) | st.text(min_size=1, max_size=12)


def paths(doc: Any, prefix: Path = ()) -> list[Path]:
    """Every key path in the document (mappings and list items), parents before children."""
    found: list[Path] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            found.append(prefix + (key,))
            found += paths(value, prefix + (key,))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found.append(prefix + (i,))
            found += paths(value, prefix + (i,))
    return found


def mappings(doc: Any, prefix: Path = ()) -> list[Path]:
    found = [prefix] if isinstance(doc, dict) else []
    children = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
    for key, value in children:
        found += mappings(value, prefix + (key,))
    return found


def _parent(doc: Any, path: Path) -> Any:
    for step in path[:-1]:
        doc = doc[step]
    return doc


def wrong_type(doc: dict) -> st.SearchStrategy[dict]:
    def apply(args: tuple[Path, Any]) -> dict:
        path, value = args
        out = copy.deepcopy(doc)
        _parent(out, path)[path[-1]] = value
        return out

    return st.tuples(st.sampled_from(paths(doc)), WRONG_VALUES).map(apply)


def unknown_key(doc: dict) -> st.SearchStrategy[dict]:
    def apply(args: tuple[Path, str, Any]) -> dict:
        path, key, value = args
        out = copy.deepcopy(doc)
        target = out
        for step in path:
            target = target[step]
        target.setdefault(key, value)
        return out

    return st.tuples(st.sampled_from(mappings(doc)), KEY_NAMES, WRONG_VALUES | st.integers()).map(apply)


def missing(doc: dict) -> st.SearchStrategy[dict]:
    def apply(path: Path) -> dict:
        out = copy.deepcopy(doc)
        del _parent(out, path)[path[-1]]
        return out

    return st.sampled_from(paths(doc)).map(apply)


def dump(doc: dict) -> bytes:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode()


def syntax_error(text: bytes) -> st.SearchStrategy[bytes]:
    """YAML that does not parse: truncated, a tab indent, an unclosed bracket or quote, a stray colon, bad bytes."""
    lines = text.splitlines(keepends=True)

    def apply(args: tuple[int, int]) -> bytes:
        kind, at = args
        at = at % max(1, len(lines))
        edits = [
            lambda: b"".join(lines[:at]) + b"pools: [\n",
            lambda: b"".join(lines[:at]) + b"\t" + b"".join(lines[at:]),
            lambda: b"".join(lines[:at]) + b"  x: 'unclosed\n" + b"".join(lines[at:]),
            lambda: b"".join(lines[:at]) + b": :\n" + b"".join(lines[at:]),
            lambda: b"".join(lines[:at]) + b"- {a: [1, 2}\n" + b"".join(lines[at:]),
            lambda: b"\xff\xfe" + text,
            lambda: b"".join(lines[:at]) + b"&anchor *alias\n",
        ]
        return edits[kind % len(edits)]()

    return st.tuples(st.integers(0, 6), st.integers(0, 500)).map(apply)


def broken_configs(doc: dict) -> st.SearchStrategy[bytes]:
    """Whole files, each a mutation of `doc`; some of them may still be valid (the caller checks)."""
    structural = wrong_type(doc) | unknown_key(doc) | missing(doc)
    return structural.map(dump) | syntax_error(dump(doc))
