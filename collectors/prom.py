"""Parsing the Prometheus text exposition (format 0.0.4) of an engine's `/metrics` into samples by metric name.

The grammar is prometheus_client's own parser (`text_string_to_metric_families`); this module adds what a
scraper of real servers needs around it:

* Only the sample lines of the names asked for are parsed. An engine's exposition is mostly histograms the
  scheduler never reads, so this keeps the cost per scrape at a handful of lines, and junk elsewhere in the
  body (a foreign metric with a broken line) cannot spoil the names that matter.
* A line the parser rejects does not lose the rest: it is reported in `Exposition.bad_lines` (line number,
  the metric name it seems to carry, the parser's reason) and every other line is kept.
* Unlabelled samples (`name 3`) and samples with a timestamp are ordinary samples (the original ignored both).
* `NaN`, `+Inf` and `-Inf` values are kept as floats; `finite()` is the explicit filter callers apply.
* A body that does not end with a line feed was cut short (the format requires a final line feed, and every
  prometheus_client server writes one): `Exposition.truncated` says so and the unterminated last line is not
  parsed, because it may hold half a number.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float
    timestamp: float | None = None


@dataclass(frozen=True)
class BadLine:
    number: int  # 1-based line number in the body
    name: str  # the metric name the line seems to carry ("" when it has none)
    reason: str


@dataclass
class Exposition:
    samples: dict[str, list[Sample]] = field(default_factory=dict)  # sample name -> samples, in body order
    bad_lines: list[BadLine] = field(default_factory=list)
    truncated: bool = False
    lines: int = 0  # lines in the body

    def get(self, name: str) -> list[Sample]:
        return self.samples.get(name, [])

    def bad_names(self) -> set[str]:
        return {b.name for b in self.bad_lines}


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


def parse_exposition(text: str, names: Collection[str] | None = None) -> Exposition:
    """Parse `text`; with `names`, only sample lines of those metric names are parsed (and can be bad)."""
    raw_lines = text.split("\n")
    out = Exposition(lines=len(raw_lines) - (1 if text.endswith("\n") else 0))
    if text and not text.endswith("\n"):
        out.truncated = True
        raw_lines = raw_lines[:-1]  # the unterminated tail may be half a line
    wanted = None if names is None else frozenset(names)
    selected: list[tuple[int, str]] = []
    for number, raw in enumerate(raw_lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # HELP/TYPE do not change a gauge's sample names, and comments carry no samples
        if wanted is not None and line_name(line) not in wanted:
            continue
        selected.append((number, line))
    if not selected:
        return out
    try:
        _collect(out, "\n".join(line for _, line in selected) + "\n")
    except ValueError:
        # Some line is malformed: the parser stops at the first one, so redo the selection line by line to keep
        # every good line and name every bad one.
        out.samples.clear()
        for number, line in selected:
            try:
                _collect(out, line + "\n")
            except ValueError as exc:
                out.bad_lines.append(BadLine(number, line_name(line), _reason(exc)))
    return out


def _collect(out: Exposition, text: str) -> None:
    # Parse fully before storing, so a failure half way leaves `out` untouched for this chunk.
    found: list[Sample] = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found.append(
                Sample(s.name, dict(s.labels), float(s.value), None if s.timestamp is None else float(s.timestamp))
            )
    for s in found:
        out.samples.setdefault(s.name, []).append(s)


def _reason(exc: ValueError) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."
