"""Parsing the Prometheus text exposition (format 0.0.4) of an engine's `/metrics` into samples by metric name.

The grammar is prometheus_client's own parser (`text_string_to_metric_families`); this module adds what a
scraper of real servers needs around it:

* Only the sample lines of the names asked for are parsed. They are found by one compiled pattern run over the
  whole body (C code, no Python loop over lines): an engine's exposition is mostly histograms the scheduler never
  reads, so the cost per scrape stays at a handful of lines, and junk elsewhere in the body (a foreign metric with
  a broken line) cannot spoil the names that matter.
* A line the parser rejects does not lose the rest: it is reported in `Exposition.bad_lines` (line number,
  the metric name it seems to carry, the parser's reason) and every other line is kept.
* Unlabelled samples (`name 3`) and samples with a timestamp are ordinary samples (the original ignored both).
* `NaN`, `+Inf` and `-Inf` values are kept as floats; `finite()` is the explicit filter callers apply.
* A body whose last line has no final line feed is parsed like any other, last line included: the text alone
  cannot tell a whole last line from a cut one, HTTP framing can (docs/scraper.md), so whether a body is complete
  is the HTTP client's verdict, not the parser's. A cut line that no longer parses is a bad line as usual.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from prometheus_client.parser import text_string_to_metric_families

SERIES_CACHE_MAX = 8192  # distinct name{labels} texts remembered; engines of one fleet mostly share them


@dataclass(slots=True)
class Sample:
    """One sample. `labels` may be shared by every sample of its series (read-only: never change it)."""

    name: str
    labels: Mapping[str, str]
    value: float
    timestamp: float | None = None


@dataclass(frozen=True)
class BadLine:
    number: int  # 1-based line number in the body
    name: str  # the metric name the line seems to carry ("" when it has none)
    reason: str


class Exposition:
    """The samples of one body by sample name, in body order, and its bad lines.

    With `names` given to parse_exposition, the wanted lines are found at once but each name's lines are parsed
    when that name is first asked for (`get`, `first_bad`): a reader that stops at the first name with a value (the
    newer of two KV-cache names, say) never pays for the others. `samples` and `bad_lines` parse what is left."""

    __slots__ = ("text", "_samples", "_bad", "_first_bad", "_pending")

    def __init__(self, text: str = "", pending: dict[str, list[tuple[int, str]]] | None = None) -> None:
        self.text = text
        self._samples: dict[str, list[Sample]] = {}  # sample name -> samples, in body order
        self._bad: list[BadLine] = []
        self._first_bad: dict[str, BadLine] = {}
        self._pending = pending or {}  # line name -> (offset, stripped line) of its lines not parsed yet

    @property
    def samples(self) -> dict[str, list[Sample]]:
        self._parse_all()
        return self._samples

    @property
    def bad_lines(self) -> list[BadLine]:
        self._parse_all()
        return sorted(self._bad, key=lambda b: b.number)

    @property
    def lines(self) -> int:
        """Lines in the body (a last line without line feed counts); counted on demand, not per scrape."""
        return self.text.count("\n") + (1 if self.text and not self.text.endswith("\n") else 0)

    def get(self, name: str) -> list[Sample]:
        if name in self._pending:
            self._parse(name)
        return self._samples.get(name, [])

    def first_bad(self, name: str) -> BadLine | None:
        """The first bad line carrying `name`, if any."""
        if name in self._pending:
            self._parse(name)
        return self._first_bad.get(name)

    def _parse_all(self) -> None:
        for name in list(self._pending):
            self._parse(name)

    def _parse(self, name: str) -> None:
        for offset, line in self._pending.pop(name):
            _read_line(self, offset, line, name)

    def _add(self, sample: Sample) -> None:
        if (found := self._samples.get(sample.name)) is None:
            self._samples[sample.name] = [sample]
        else:
            found.append(sample)

    def _bad_line(self, offset: int, line: str, reason: str) -> None:
        bad = BadLine(self.text.count("\n", 0, offset) + 1, line_name(line), reason)
        self._bad.append(bad)
        self._first_bad.setdefault(bad.name, bad)


def line_name(line: str) -> str:
    """The metric name at the start of a sample line: everything before the first `{`, space or tab."""
    end = len(line)
    for sep in ("{", " ", "\t"):
        i = line.find(sep)
        if 0 <= i < end:
            end = i
    return line[:end]


def finite(samples: Iterable[Sample]) -> list[Sample]:
    """The samples whose value is a real number (drops NaN and +-Inf)."""
    return [s for s in samples if math.isfinite(s.value)]


def _trie(words: Iterable[str]) -> str:
    """A regular expression matching exactly `words`, factored by common prefixes: a line that starts with no
    wanted name is rejected after a character or two instead of one comparison per name."""
    root: dict = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict) -> str:
        ends = "" in node
        alts = [re.escape(ch) + emit(sub) for ch, sub in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        if ends:
            return f"(?:{body})?"
        return body

    return emit(root)


# What follows the name{labels} of a sample line in its plain shape: space-separated a value (an integer, a decimal
# or exponent number, Inf or NaN, with an optional sign) and an optional integer timestamp (ms). Other shapes (tabs,
# several values, a `_` in a number, `inf` in lower case...) go through prometheus_client whole.
_PLAIN_VALUE = re.compile(
    r" +(?:([-+]?[0-9]{1,300})|([-+]?(?:[0-9]+\.[0-9]*(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?"
    r"|[0-9]+[eE][-+]?[0-9]+|Inf|NaN)))(?: +([-+]?[0-9]{1,18}))?"
)
_LEGACY_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


@functools.lru_cache(maxsize=64)
def _selectors(names: frozenset[str]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    # A wanted line: optional white space (what str.strip() removes, line feeds aside), a wanted name (group 1),
    # then what ends a name on a sample line (`{`, a space or tab, or only white space up to the end of the line or
    # body: CRLF), and the rest of the line. The first pattern matches the body's first line; the second every
    # later one, from the line feed before it: that literal lets the engine skip from line start to line start
    # (and spares a copy of the body with a line feed put in front).
    line = r"[^\S\n]*(" + _trie(names) + r")(?=[{ \t]|[^\S\n]*(?:\n|\Z))[^\n]*"
    return re.compile(line), re.compile("\n" + line)


def _wanted_lines(text: str, names: Collection[str]) -> Iterator[tuple[int, re.Match[str]]]:
    """(offset of the line in `text`, its match) of every wanted line, in body order."""
    first, later = _selectors(frozenset(names))
    if (m := first.match(text)) is not None:
        yield 0, m
    for m in later.finditer(text):
        yield m.start() + 1, m


def parse_exposition(text: str, names: Collection[str] | None = None) -> Exposition:
    """Parse `text`; with `names`, only sample lines of those metric names are parsed (and can be bad), each name's
    when it is first asked for."""
    if names is None:
        out = Exposition(text)
        for offset, line in _every_sample_line(text):
            _parse_line(out, offset, line)
        return out
    pending: dict[str, list[tuple[int, str]]] = {}
    if names:
        for offset, m in _wanted_lines(text, names):
            name = m.group(1)
            if (lines := pending.get(name)) is None:
                pending[name] = [(offset, m.group().strip())]
            else:
                lines.append((offset, m.group().strip()))
    out = Exposition(text, pending)
    for name in [n for n in pending if not _LEGACY_NAME.fullmatch(n)]:
        out._parse(name)  # its samples may be named otherwise (prometheus_client reads quotes in it): parse now
    return out


def _read_line(out: Exposition, offset: int, line: str, name: str) -> None:
    """One wanted line: a plain line whose name{labels} was parsed before (in this or an earlier body) needs only
    its numbers read; the others go through prometheus_client, and a line it rejects is a bad line."""
    if line[len(name) : len(name) + 1] == "{":
        key, _, rest = line.rpartition("}")
        key += "}"
    else:
        key, rest = name, line[len(name) :]
    known = _series.get(key)
    plain = _PLAIN_VALUE.fullmatch(rest)
    if known is None or plain is None:
        _parse_line(out, offset, line, key if plain is not None and _cacheable(key, name) else None)
        return
    whole, number, stamp = plain.groups()
    out._add(
        Sample(
            known[0],
            known[1],
            float(int(whole)) if whole is not None else float(number),  # as prometheus_client: int() first
            None if stamp is None else int(stamp) / 1000,
        )
    )


# name{labels} text of a plain line (all of it before the value) -> (sample name, labels) as prometheus_client
# parsed it; the labels as a read-only view, shared by the samples of that series.
_series: dict[str, tuple[str, Mapping[str, str]]] = {}


def _cacheable(key: str, name: str) -> bool:
    """True when prometheus_client's parse of a line `key` + plain value depends on `key` alone: the name is a
    plain metric name and, with labels, their block closes at the key's last character (prometheus_client ends
    it at the first `}` outside quotes; what follows it is read as value and timestamp)."""
    if not _LEGACY_NAME.fullmatch(name):
        return False
    if key == name:
        return True
    in_quotes, backslashes = False, 0
    for i in range(len(name), len(key)):
        c = key[i]
        if c == '"' and backslashes % 2 == 0:  # an escaped quote (odd backslashes before it) does not count
            in_quotes = not in_quotes
        elif c == "}" and not in_quotes:
            return i == len(key) - 1
        backslashes = backslashes + 1 if c == "\\" else 0
    return False


def _parse_line(out: Exposition, offset: int, line: str, key: str | None = None) -> None:
    """One line through prometheus_client (a failure is a bad line); with `key`, its series is remembered."""
    try:
        found = _collect(out, line + "\n")
    except (ValueError, OverflowError) as exc:  # OverflowError: an integer (value, timestamp) beyond a float
        out._bad_line(offset, line, _reason(exc))
        return
    if key is not None and len(found) == 1:
        if len(_series) >= SERIES_CACHE_MAX:
            _series.clear()
        _series[key] = (found[0].name, MappingProxyType(dict(found[0].labels)))


def select_lines(text: str, names: Collection[str]) -> list[tuple[int, str]]:
    """(offset in `text`, stripped line) of every sample line whose metric name is in `names`, in body order.

    The same lines a loop over `text.split("\\n")` picks with `line_name(line.strip()) in names`, found by one
    pattern search instead (line numbers are counted later, and only for bad lines)."""
    if not names:
        return []
    return [(offset, m.group().strip()) for offset, m in _wanted_lines(text, names)]


def _every_sample_line(text: str) -> list[tuple[int, str]]:
    """(offset, stripped line) of every sample line: the full parse, for tools and tests, not the scraper."""
    out, offset = [], 0
    for raw in text.split("\n"):
        line = raw.strip()
        if line and not line.startswith("#"):
            out.append((offset, line))
        offset += len(raw) + 1
    return out


def _collect(out: Exposition, text: str) -> list[Sample]:
    # Parse fully before storing, so a failure half way leaves `out` untouched for this chunk.
    found: list[Sample] = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found.append(
                Sample(s.name, dict(s.labels), float(s.value), None if s.timestamp is None else float(s.timestamp))
            )
    for sample in found:
        out._add(sample)
    return found


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."
