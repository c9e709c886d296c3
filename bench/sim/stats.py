"""Per-policy results: latency percentiles and traffic shares of the requests that arrived after the warm-up."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llmsched.bench.sim.engine import FAILED, Request

if TYPE_CHECKING:
    from llmsched.bench.sim.policies import View
    from llmsched.bench.sim.runner import Prepared


@dataclass
class Result:
    policy: str
    ttft_mean: float
    ttft_p50: float
    ttft_p99: float
    tpot_mean: float
    e2e_p99: float
    throughput_rps: float
    share: dict[str, float]
    requests: int = 0
    failed: int = 0
    none_share: float = 0.0
    extra: dict = field(default_factory=dict)
    ttft_p90: float = math.nan
    cache_hit_rate: float = 0.0  # prompt tokens served from the engines' prefix caches / prompt tokens
    prefix_share: float = 0.0  # decisions answered by the sticky prefix stage / decisions

    def to_json(self) -> dict:
        """The row of `llmsched bench routing --json` (times in seconds)."""
        return {
            "policy": self.policy,
            "ttft_mean": self.ttft_mean,
            "ttft_p50": self.ttft_p50,
            "ttft_p99": self.ttft_p99,
            "tpot_mean": self.tpot_mean,
            "e2e_p99": self.e2e_p99,
            "throughput_rps": self.throughput_rps,
            "share": self.share,
            "requests": self.requests,
            "failed": self.failed,
            "none_share": self.none_share,
            "ttft_p90": self.ttft_p90,
            "cache_hit_rate": self.cache_hit_rate,
            "prefix_share": self.prefix_share,
        }


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN for no values."""
    if not values:
        return math.nan
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(policy: str, prepared: Prepared, requests: list[Request], view: View, end: float) -> Result:
    sc = prepared.scenario
    measured = [r for r in requests if sc.warmup <= r.arrival < sc.duration]
    ttft = [r.first_token - r.arrival for r in measured if r.first_token is not None and r.finished is not None]
    # a request still waiting at the horizon counts with the time it had waited (a lower bound)
    ttft += [end - r.arrival for r in measured if r.first_token is None and r.engine >= 0 and r.state != FAILED]
    e2e = [r.finished - r.arrival for r in measured if r.finished is not None]
    tpots = [t for t in (r.tpot for r in measured) if t is not None]
    window = sc.duration - sc.warmup
    completed = sum(1 for r in requests if r.finished is not None and sc.warmup <= r.finished < sc.duration)
    if sc.arrivals.prompts:  # a benchmark run: its duration is from its start to its last answer, as vLLM's
        finished = [r.finished for r in measured if r.finished is not None]
        completed = len(finished)
        window = max(finished, default=sc.warmup) - sc.warmup
    routed = [r.engine for r in measured if r.engine >= 0]
    share = {e.name: (routed.count(i) / len(routed) if routed else 0.0) for i, e in enumerate(sc.engines)}
    failed = sum(1 for r in measured if r.finished is None)
    admitted = [r for r in measured if r.cached is not None]
    prompt_tokens = sum(r.prompt for r in admitted)
    return Result(
        policy=policy,
        ttft_mean=statistics.fmean(ttft) if ttft else math.nan,
        ttft_p50=percentile(ttft, 50),
        ttft_p99=percentile(ttft, 99),
        tpot_mean=statistics.fmean(tpots) if tpots else math.nan,
        e2e_p99=percentile(e2e, 99),
        throughput_rps=completed / window if window > 0 else 0.0,
        share=share,
        requests=len(measured),
        failed=failed,
        none_share=view.none_answers / view.decisions if view.decisions else 0.0,
        ttft_p90=percentile(ttft, 90),
        cache_hit_rate=sum(r.cached or 0 for r in admitted) / prompt_tokens if prompt_tokens else 0.0,
        prefix_share=view.prefix_picks / view.decisions if view.decisions else 0.0,
    )
