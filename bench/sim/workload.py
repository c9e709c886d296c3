"""Requests: prompt and output lengths from a ShareGPT-like distribution, and their arrival times.

Lengths: two independent lognormals, resampled (not clipped) with the filter vLLM's `benchmark_serving.py`
applies to ShareGPT (drop prompt or output < 4 tokens, prompt > 1024, prompt + output > 2048). The medians are
fitted so that the filtered means match a published `vllm bench serve` run on ShareGPT with the Llama-3 tokenizer
(1000 prompts: 229,711 input and 203,068 generated tokens, i.e. 230 / 203 per request; vllm-project/vllm
PR #18566); the spreads (sigma 1.0 for prompts, 0.9 for outputs) are our assumption of a heavy tail, giving
p99 / median of about 6 for prompts and 7.5 for outputs. Defaults: prompt median 172, output median 139.

Arrivals are open-loop (clients do not wait for each other): `poisson` (exponential gaps) or `bursty`, a
two-state Markov-modulated Poisson process: "on" periods at `peak` x the mean rate alternate with "off"
periods at the rate that keeps the long-run mean, both with exponentially distributed lengths. Or `closed`:
`concurrency` clients, each sending its next request the moment its previous one completes (vLLM's
`benchmark_serving.py --max-concurrency N`); the runner drives those (bench/sim/runner.py).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from llmsched.bench.sim.prefixes import Prefixes, Sessions


@dataclass(frozen=True)
class LengthDist:
    median: float
    sigma: float

    def draw(self, rng: random.Random) -> int:
        return int(rng.lognormvariate(math.log(self.median), self.sigma))


@dataclass(frozen=True)
class Workload:
    prompt: LengthDist = LengthDist(172.0, 1.0)
    output: LengthDist = LengthDist(139.0, 0.9)
    min_tokens: int = 4
    max_prompt: int = 1024
    max_total: int = 2048
    prefixes: Prefixes | None = None  # shared prompt starts (bench/sim/prefixes.py); the filter above is for
    sessions: Sessions | None = None  # the request's own part only, as `prompt` describes it

    def draw(self, rng: random.Random) -> tuple[int, int]:
        """(prompt tokens, output tokens) of one request (its own part, without a shared prefix or history)."""
        while True:
            p, o = self.prompt.draw(rng), self.output.draw(rng)
            if p >= self.min_tokens and o >= self.min_tokens and p <= self.max_prompt and p + o <= self.max_total:
                return p, o

    @property
    def shaped(self) -> bool:
        """True when prompts share content (prefix groups or sessions): the engines' prefix caches matter."""
        return self.prefixes is not None or self.sessions is not None

    def cold(self) -> Workload | ColdWorkload:
        """What calibration measures capacity on: every prompt with a prefix of the groups' median length and no
        cache reuse, so that `load` is a fraction of what the engines serve when no prefix is ever reused."""
        return ColdWorkload(self) if self.prefixes is not None else self


@dataclass(frozen=True)
class ColdWorkload:
    base: Workload

    def draw(self, rng: random.Random) -> tuple[int, int]:
        p, o = self.base.draw(rng)
        prefixes = self.base.prefixes
        return p + (int(prefixes.median) if prefixes else 0), o


@dataclass(frozen=True)
class Arrivals:
    process: str = "poisson"  # poisson | bursty | closed
    on_mean: float = 5.0  # bursty: mean length of an "on" period, s
    off_mean: float = 15.0  # bursty: mean length of an "off" period, s
    peak: float = 2.5  # bursty: rate during "on" periods, as a multiple of the mean rate
    concurrency: int = 0  # closed: number of clients, each with one request in flight
    # closed: requests the clients send in all (vLLM's `--num-prompts`), starting together after the warm-up;
    # 0: they keep sending until the scenario's duration
    prompts: int = 0

    @property
    def closed(self) -> bool:
        return self.process == "closed"

    def validate(self) -> None:
        if self.process not in ("poisson", "bursty", "closed"):
            raise ValueError(f"arrival process must be poisson, bursty or closed, not {self.process!r}")
        if self.closed and self.concurrency < 1:
            raise ValueError("closed arrivals need concurrency >= 1")
        if self.process == "bursty":
            if self.on_mean <= 0 or self.off_mean <= 0:
                raise ValueError("bursty arrivals need on_mean > 0 and off_mean > 0")
            if not 1.0 <= self.peak <= (self.on_mean + self.off_mean) / self.on_mean:
                raise ValueError(
                    "bursty peak must be >= 1 and at most (on_mean + off_mean) / on_mean "
                    "(the off-period rate cannot be negative)"
                )

    def times(self, rate: float, start: float, end: float, rng: random.Random) -> Iterator[float]:
        """Arrival instants in [start, end) for a long-run mean of `rate` per second."""
        if rate <= 0:
            return
        if self.process == "poisson":
            t = start
            while True:
                t += rng.expovariate(rate)
                if t >= end:
                    return
                yield t
        cycle = self.on_mean + self.off_mean
        on_rate = rate * self.peak
        off_rate = rate * (cycle - self.peak * self.on_mean) / self.off_mean
        t, on = start, rng.random() < self.on_mean / cycle
        while t < end:
            period_end = min(end, t + rng.expovariate(1.0 / (self.on_mean if on else self.off_mean)))
            r = on_rate if on else off_rate
            while r > 0:
                t += rng.expovariate(r)
                if t >= period_end:
                    break
                yield t
            t, on = period_end, not on
