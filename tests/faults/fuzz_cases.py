"""Hypothesis strategies for fuzzing the HTTP API: requests to every route, odd member strings, odd bodies.

schemathesis would need an OpenAPI document, which the API does not have; these strategies take the routes from
the Flask app's own URL map instead, so a route added later is fuzzed without touching this file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from hypothesis import strategies as st
from werkzeug.routing import Rule

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=30,
)


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    query: str
    body: bytes | None
    content_type: str | None
    rule: str
    offered: tuple[str, ...] | None = None  # the members list of a select body, when it is a list of strings

    @property
    def url(self) -> str:
        return self.path + (f"?{self.query}" if self.query else "")


@dataclass
class Seeded:
    """What the fuzzed app's Redis holds: pool (name, partition) pairs and each pool's member strings."""

    pools: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    @property
    def members(self) -> list[str]:
        return [m for ms in self.pools.values() for m in ms]


def member_variants(member: str) -> list[str]:
    """Spellings of one real member that a sloppy or hostile client could send."""
    address, _, port = member.rpartition(":")
    return [
        member,
        f" {member}",
        f"{member} ",
        f"{member}\n",
        member.upper(),
        f"[{address}]:{port}",
        f"{address}.{port}",
        f"{address}:0{port}",
        f"{address}:{port}0",
        f"{address}%0:{port}",
        f"{address}%2:{port}",
        f"{address}:+{port}",
        f"{address}:-{port}",
        f"{address}:{port}.0",
        f"{address}::{port}",
        f"{address}:",
        f":{port}",
        address,
        member.replace("1", "\uff11"),
        member + "\x00",
        member * 3,
    ]


ODD_MEMBERS = [
    "",
    " ",
    "\t",
    ":",
    "::",
    ":::",
    "%",
    "%%:1",
    "[]:80",
    "[::1]:80",
    "::1:80",
    "::1.80",
    "fe80::1%eth0:80",
    "2001:db8::1:99999",
    "10.0.0.1:65536",
    "10.0.0.1:99999999999999999999999",
    "10.0.0.1:-1",
    "10.0.0.1:1e3",
    "10.0.0.1:0x50",
    "999.999.999.999:80",
    "10.0.0.1%99999999999999:80",
    "localhost:8000",
    "例え.jp:8000",
    "\u202e10.0.0.1:8000",
    "10.0.0.1:8000/../../",
    "x" * 5000,
    "none",
    "fallback",
    "NONE",
    "${jndi:ldap://x}",
    "' OR 1=1 --",
    "<script>",
    "\ud7ff:1",
]


def members_strategy(seeded: Seeded) -> st.SearchStrategy[list[Any]]:
    real = seeded.members
    variant = st.sampled_from(real).flatmap(lambda m: st.sampled_from(member_variants(m)))
    text_member = st.sampled_from(real) | variant | st.sampled_from(ODD_MEMBERS) | st.text(max_size=60)
    non_string = (
        st.integers()
        | st.none()
        | st.floats()
        | st.lists(st.text(max_size=5), max_size=2)
        | st.dictionaries(st.text(max_size=5), st.integers(), max_size=2)
    )
    return st.lists(text_member, max_size=40) | st.lists(text_member | non_string, min_size=1, max_size=12)


def body_strategy(seeded: Seeded) -> st.SearchStrategy[tuple[bytes | None, str | None, tuple[str, ...] | None]]:
    """(raw body, content type, offered members if the body is a select request with a list of strings)."""
    pool = st.sampled_from(sorted(seeded.pools)) | st.tuples(st.text(max_size=30), st.text(max_size=20))
    name_value = st.text(max_size=30) | JSON_SCALARS | ANY_JSON

    @st.composite
    def select_body(draw) -> tuple[bytes, str, tuple[str, ...] | None]:
        name, partition = draw(pool)
        doc: dict[str, Any] = {"pool_name": name, "partition": partition, "members": draw(members_strategy(seeded))}
        for key in draw(
            st.lists(st.sampled_from(["pool_name", "partition", "members", "model", "extra"]), max_size=2, unique=True)
        ):
            action = draw(st.sampled_from(["drop", "replace"]))
            if action == "drop":
                doc.pop(key, None)
            else:
                doc[key] = draw(name_value)
        members = doc.get("members")
        offered = tuple(members) if isinstance(members, list) and all(isinstance(m, str) for m in members) else None
        return json.dumps(doc).encode(), "application/json", offered

    arbitrary_json = ANY_JSON.map(lambda v: (json.dumps(v).encode(), "application/json", None))
    raw_bytes = st.binary(max_size=300).map(lambda b: (b, st_choice_content_type(b), None))
    broken_json = st.sampled_from(
        [
            b"{",
            b'{"pool_name": "p1", "partition": "Common", "members": [',
            b"\xff\xfe{}",
            b"[1,2",
            b'{"a":NaN}',
            b"null",
            b"1e999999",
            b'"\\ud800"',
            b'{"members": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        ]
    )
    return (
        select_body()
        | arbitrary_json
        | raw_bytes
        | broken_json.map(lambda b: (b, "application/json", None))
        | st.just((None, None, None))
    )


def st_choice_content_type(body: bytes) -> str | None:
    # Deterministic per body so hypothesis can shrink it; covers JSON, form, and no header at all.
    return ("application/json", "application/x-www-form-urlencoded", None, "text/plain")[len(body) % 4]


def segment_strategy(real: list[str]) -> st.SearchStrategy[str]:
    odd = st.sampled_from(["..", ".", "%2e%2e", "{x}", "a b", "ü", "名前", "%", "%00", "~Common~p", " ", "x" * 300])
    return st.sampled_from(real) | odd | st.text(min_size=1, max_size=30).filter(lambda s: "/" not in s)


def query_strategy() -> st.SearchStrategy[str]:
    iterations = st.integers(min_value=1, max_value=2000).map(str) | st.sampled_from(
        ["0", "-1", "100001", "9" * 5000, "abc", "", " 5 ", "1e3", "0x10", "１２", "5.5", "nan", "inf"]
    )
    pairs = st.lists(
        st.tuples(
            st.sampled_from(["iterations", "simple", "x", ""]) | st.text(max_size=8), iterations | st.text(max_size=20)
        ),
        max_size=3,
    )
    return pairs.map(lambda ps: urlencode(ps)) | st.text(max_size=40).map(lambda t: quote(t, safe="=&"))


def request_strategy(rules: list[Rule], seeded: Seeded) -> st.SearchStrategy[Case]:
    names = sorted({n for n, _ in seeded.pools})
    partitions = sorted({p for _, p in seeded.pools})

    @st.composite
    def build(draw) -> Case:
        rule = draw(st.sampled_from(rules))
        allowed = sorted(rule.methods - {"HEAD", "OPTIONS"}) or ["GET"]
        method = draw(st.sampled_from(allowed) | st.sampled_from(METHODS))
        path = rule.rule
        for arg in sorted(rule.arguments):
            real = names if arg == "pool_name" else partitions if arg == "partition" else ["app.js", "x.css"]
            value = draw(segment_strategy(real))
            if arg == "filename":
                value = draw(st.sampled_from([value, "../../etc/passwd", "..%2f..%2fsetup.cfg", "a/../../b"]))
            path = path.replace(f"<{arg}>", quote(value, safe="")).replace(f"<path:{arg}>", quote(value, safe="/"))
        body, ctype, offered = draw(body_strategy(seeded)) if method in ("POST", "PUT", "PATCH") else (None, None, None)
        return Case(method, path, draw(query_strategy()), body, ctype, rule.rule, offered)

    return build()


def arbitrary_path_strategy() -> st.SearchStrategy[Case]:
    # The first segment is never empty: the test client would read "//x" as a host, a real server as a path.
    paths = st.tuples(st.text(min_size=1, max_size=12), st.lists(st.text(max_size=12), max_size=4)).map(
        lambda parts: "/" + "/".join(quote(p, safe="") for p in (parts[0], *parts[1]))
    )
    return st.builds(
        lambda m, p, q: Case(m, p, q, None, None, "(any path)"), st.sampled_from(METHODS), paths, query_strategy()
    )
