"""A tiny Prometheus text-format (0.0.4) writer that reproduces client_python's `generate_latest` byte for byte.

Written by hand rather than through a prometheus_client registry because the emulators must show things a
registry cannot be told to do: multiprocess-mode ordering (`_sum` first, no `_created`), per-TP duplicate
series, a `pid` label, and the old/new vLLM names side by side. The rules followed (prometheus_client's text
format): labels sorted,
counters named `<n>_total` in HELP/TYPE/sample lines, a separate `<n>_created` gauge family after each counter
or histogram family, buckets ascending to `+Inf`, and Go float formatting (`7.0`, `1.048576e+06`).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from prometheus_client.utils import floatToGoString

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
INF = float("inf")


class Histogram:
    """Observations kept per bucket; `cumulative()` gives the `le` ladder as exposed."""

    def __init__(self, bounds: list[float]) -> None:
        self.bounds = sorted(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last slot is +Inf only
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, float]]:
        out, acc = [], 0
        for bound, n in zip([*self.bounds, INF], self.counts):
            acc += n
            out.append((bound, float(acc)))
        return out


@dataclass
class Series:
    labels: dict[str, str]
    value: float = 0.0  # gauges and counters
    hist: Histogram | None = None  # histograms
    created: float | None = None  # Unix time, for the `_created` family


@dataclass
class Family:
    name: str  # counters without the `_total` suffix
    kind: str  # gauge | counter | histogram
    help: str
    series: list[Series] = field(default_factory=list)


def escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _line(name: str, labels: dict[str, str], value: float) -> str:
    if labels:
        inner = ",".join(f'{k}="{escape(v)}"' for k, v in sorted(labels.items()))
        return f"{name}{{{inner}}} {floatToGoString(value)}\n"
    return f"{name} {floatToGoString(value)}\n"


def _hist_lines(name: str, s: Series, multiprocess: bool) -> tuple[list[str], list[str]]:
    """(sum lines, bucket+count lines) for one series; the caller orders them per mode."""
    assert s.hist is not None
    buckets = [_line(f"{name}_bucket", {**s.labels, "le": floatToGoString(le)}, n) for le, n in s.hist.cumulative()]
    count = _line(f"{name}_count", s.labels, float(s.hist.count))
    total = _line(f"{name}_sum", s.labels, s.hist.sum)
    if multiprocess:
        return [total], [*buckets, count]
    return [], [*buckets, count, total]


def render_family(f: Family, multiprocess: bool = False) -> str:
    """One family as client_python prints it; `multiprocess` mimics PROMETHEUS_MULTIPROC_DIR output."""
    name = f"{f.name}_total" if f.kind == "counter" else f.name
    help_text = f.help.replace("\\", r"\\").replace("\n", r"\n")
    out = [f"# HELP {name} {help_text}\n", f"# TYPE {name} {f.kind}\n"]
    if f.kind == "histogram":
        sums: list[str] = []
        rest: list[str] = []
        for s in f.series:
            a, b = _hist_lines(f.name, s, multiprocess)
            sums += a
            rest += b
        out += sums + rest  # multiprocess mode prints every _sum before the buckets
    else:
        out += [_line(name, s.labels, s.value) for s in f.series]
    if f.kind in ("counter", "histogram") and not multiprocess:
        created = [s for s in f.series if s.created is not None]
        if created:
            out += [f"# HELP {f.name}_created {help_text}\n", f"# TYPE {f.name}_created gauge\n"]
            out += [_line(f"{f.name}_created", s.labels, s.created or 0.0) for s in created]
    return "".join(out)


def render(families: list[Family], multiprocess: bool = False) -> str:
    return "".join(render_family(f, multiprocess) for f in families)
