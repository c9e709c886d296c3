"""How many requests each engine holds over a run, as a Grafana panel of vLLM's num_requests_running +
num_requests_waiting would show it: the check of a scenario against a described load split (docs/routing.md
5.3 holds published_homogeneous against the original authors' Grafana).

    python -m llmsched.bench.sim.occupancy published_homogeneous_knee --concurrency 120 --seed 1

prints, per policy, the time-averaged running and waiting requests of every engine after the warm-up.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace

from llmsched.bench.sim import runner
from llmsched.bench.sim import scenario as scenarios


@dataclass
class Occupancy:
    policy: str
    running: list[float]  # time-averaged num_requests_running per engine
    waiting: list[float]  # time-averaged num_requests_waiting per engine


class _Measured(runner.Simulation):
    """A simulation that integrates each engine's running and waiting counts over time, step by step."""

    def __init__(self, prepared: runner.Prepared, policy: str) -> None:
        super().__init__(prepared, policy)
        n = len(self.engines)
        self.since = [prepared.scenario.warmup] * n
        self.run_area = [0.0] * n
        self.wait_area = [0.0] * n

    def _step(self, now: float, index: int, generation: int) -> None:
        engine = self.engines[index]
        start, end = self.since[index], min(now, self.sc.duration)  # the clients stop at `duration`
        if generation == engine.generation and end > start:
            # the step's counts held for the whole step (and any idle time before it)
            self.run_area[index] += engine.running * (end - start)
            self.wait_area[index] += len(engine.waiting) * (end - start)
            self.since[index] = end
        super()._step(now, index, generation)


STEADY_SPAN = 120.0  # s measured after the warm-up when the scenario is a benchmark run (arrivals.prompts)


def steady(sc: scenarios.Scenario) -> scenarios.Scenario:
    """The load a Grafana panel shows over minutes: a benchmark run's clients as a steady closed loop (no prompt
    budget, so no start burst and no drain), measured for STEADY_SPAN after the warm-up."""
    if not sc.arrivals.prompts:
        return sc
    return replace(sc, arrivals=replace(sc.arrivals, prompts=0), duration=sc.warmup + STEADY_SPAN)


def measure(sc: scenarios.Scenario, policy: str, seed: int) -> Occupancy:
    sc = steady(sc)
    sim = _Measured(runner.prepare(sc, seed), policy)
    sim.run()
    span = sc.duration - sc.warmup
    return Occupancy(policy, [a / span for a in sim.run_area], [a / span for a in sim.wait_area])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m llmsched.bench.sim.occupancy", description=__doc__)
    parser.add_argument("scenario", help="a shipped scenario name or a scenario file")
    parser.add_argument("--concurrency", type=int, help="N closed-loop clients instead of the scenario's arrivals")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--policies", default="", help="comma-separated (default: the scenario's list)")
    args = parser.parse_args(argv)
    sc = scenarios.load(args.scenario)
    if args.concurrency:
        sc = sc.with_concurrency(args.concurrency)
    policies = [p for p in args.policies.split(",") if p] or list(sc.policies)
    names = [e.name for e in sc.engines]
    print(f"{sc.name}, seed {args.seed}: time-averaged requests per engine (running + waiting) after the warm-up")
    print(f"{'policy':<24} " + "  ".join(f"{n:>14}" for n in names))
    for policy in policies:
        occ = measure(sc, policy, args.seed)
        cells = (f"{r + w:5.1f} ({r:4.1f}+{w:4.1f})" for r, w in zip(occ.running, occ.waiting))
        print(f"{policy:<24} " + "  ".join(f"{c:>14}" for c in cells))


if __name__ == "__main__":
    main()
