"""Single-engine measurements with the simulator itself: capacity, background load, and the anchor benchmark.

* capacity: requests per second an engine completes when it is never short of work (the best closed loop of
  max_seqs / 8 to 2 x max_seqs clients), the reference for a scenario's `load`;
* background: requests per second a closed loop of N clients alone gets from an engine;
* anchor: N ShareGPT requests sent at once (vLLM `benchmark_serving.py --request-rate inf`), to compare with
  published runs;
* closed_loop: mean TTFT, TPOT, waiting queue and KV use with N closed-loop clients, to check the presets of the
  original's published set-ups against the statements they were derived from;
* knee: the concurrency past which one engine's closed-loop TTFT rises steeply, checked against the knees the
  description states.
`python -m llmsched.bench.sim.calibrate` prints them for every preset (docs/routing.md).
"""

from __future__ import annotations

import random
import statistics
from functools import lru_cache

from llmsched.bench.sim.engine import Engine, Request
from llmsched.bench.sim.profiles import PRESETS, EngineProfile
from llmsched.bench.sim.workload import Workload


class _ClosedLoop:
    """One engine, `clients` clients that send a new request as soon as theirs finishes (or all at t=0 only)."""

    def __init__(self, prof: EngineProfile, workload: Workload, clients: int, seed: int, refill: bool) -> None:
        self.rng = random.Random(seed)
        self.workload = workload
        self.refill = refill
        self.engine = Engine(0, "e", prof, self)
        self.done: list[Request] = []
        self.next_id = 0
        for _ in range(clients):
            self._send(0.0)

    def _send(self, now: float) -> None:
        p, o = self.workload.draw(self.rng)
        self.next_id += 1
        self.engine.submit(Request(self.next_id, p, o, now), now)

    def first_token(self, req: Request, now: float) -> None:
        pass

    def finished(self, req: Request, now: float) -> None:
        self.done.append(req)
        if self.refill:
            self._send(now)

    def failed(self, req: Request, now: float) -> None:  # engines never fail here
        raise AssertionError("calibration engine failed")

    def run(self, until: float) -> float:
        now = 0.0
        while now < until:
            step = self.engine.start_step(now)
            if step is None:
                return now
            now += step
            self.engine.end_step(now)
        return now


@lru_cache(maxsize=64)
def capacity(prof: EngineProfile, workload: Workload, seed: int = 7, horizon: float = 240.0) -> float:
    """Saturated throughput in requests/s: the best of closed loops of max_seqs / 8 ... 2 x max_seqs clients
    (a KV-bound engine does best before it thrashes on preemptions), measured after a quarter of the horizon."""
    return max(
        background_rate(prof, workload, max(1, int(prof.max_seqs * f)), seed, horizon)
        for f in (0.125, 0.25, 0.5, 1.0, 2.0)
    )


@lru_cache(maxsize=64)
def background_rate(
    prof: EngineProfile, workload: Workload, clients: int, seed: int = 11, horizon: float = 240.0
) -> float:
    """Requests/s that `clients` closed-loop clients alone get from the engine."""
    loop = _ClosedLoop(prof, workload, clients, seed, refill=True)
    loop.run(horizon)
    start = horizon / 4
    return sum(1 for r in loop.done if r.finished >= start) / (horizon - start)


def anchor(prof: EngineProfile, workload: Workload, prompts: int = 1000, seed: int = 0) -> dict:
    """vLLM's serving benchmark with every prompt sent at t=0: throughput, mean TTFT, mean TPOT, mean ITL."""
    loop = _ClosedLoop(prof, workload, prompts, seed, refill=False)
    end = loop.run(10_000.0)
    done = loop.done
    tpots = [r.tpot for r in done if r.tpot is not None]
    return {
        "requests": len(done),
        "duration": end,
        "throughput_rps": len(done) / end,
        "output_tok_s": sum(r.output for r in done) / end,
        "ttft_mean": statistics.fmean(r.first_token for r in done),
        "tpot_mean": statistics.fmean(tpots),
    }


def closed_loop(prof: EngineProfile, workload: Workload, clients: int, seed: int = 3, horizon: float = 300.0) -> dict:
    """`clients` closed-loop clients on one engine, measured after a fifth of the horizon: mean TTFT and TPOT of
    the requests sent then, and the time-averaged waiting queue and KV-cache use (what /metrics would show)."""
    loop = _ClosedLoop(prof, workload, clients, seed, refill=True)
    start, now = horizon / 5, 0.0
    waiting = kv = weight = 0.0
    while now < horizon:
        step = loop.engine.start_step(now)
        if step is None:
            break
        if now >= start:
            waiting += len(loop.engine.waiting) * step
            kv += loop.engine.kv_used / prof.kv_tokens * step
            weight += step
        now += step
        loop.engine.end_step(now)
    done = [r for r in loop.done if r.arrival >= start]
    return {
        "ttft_mean": statistics.fmean(r.first_token - r.arrival for r in done if r.first_token is not None),
        "tpot_mean": statistics.fmean(t for t in (r.tpot for r in done) if t is not None),
        "waiting_mean": waiting / weight,
        "kv_mean": kv / weight,
    }


# The statements of the original's published set-ups each preset is checked against (docs/routing.md):
# clients at which to report TTFT, and clients around its stated waiting-queue onset.
PUBLISHED_CHECKS = {
    "published-1gpu": ((1, 5, 10, 20, 30, 40, 50), (150, 160, 170)),
    "published-4gpu-tp4": ((1, 5, 10, 20, 30, 40, 50), (240, 250, 260)),
    "published-1gpu-knee": ((1, 5, 10, 20, 30, 40, 50), (30, 40, 50)),
}
# Where the description puts each preset's TTFT knee, in closed-loop clients on that server alone: the
# homogeneous test's "single-node knee ~30-40" and the 4-GPU's TTFT that "starts to increase significantly
# above 40-50". published-1gpu has no stated knee of its own (it is checked against its waiting onset).
STATED_KNEES = {"published-1gpu-knee": (30, 40), "published-4gpu-tp4": (40, 50)}
KNEE_FACTOR = 2.0  # "rises steeply": past the knee the mean TTFT is more than twice the light-load one
KNEE_LIGHT = 5  # clients of the light-load reference
KNEE_STEP = 5
KNEE_MAX = 300


def knee(prof: EngineProfile, workload: Workload, seed: int = 3, horizon: float = 150.0) -> int | None:
    """The TTFT knee of one engine under closed-loop load: the last concurrency (in steps of 5 clients) at
    which its mean TTFT is still below KNEE_FACTOR x the TTFT at KNEE_LIGHT clients; None when it never gets
    there by KNEE_MAX clients."""
    light = closed_loop(prof, workload, KNEE_LIGHT, seed, horizon)["ttft_mean"]
    last = KNEE_LIGHT
    for clients in range(KNEE_LIGHT + KNEE_STEP, KNEE_MAX + 1, KNEE_STEP):
        if closed_loop(prof, workload, clients, seed, horizon)["ttft_mean"] >= KNEE_FACTOR * light:
            return last
        last = clients
    return None


def knee_check(name: str, prof: EngineProfile, workload: Workload) -> str:
    """One line: the preset's measured knee beside the one its description states (if it states one)."""
    found = knee(prof, workload)
    shown = f"{found} clients" if found is not None else f"none up to {KNEE_MAX} clients"
    stated = STATED_KNEES.get(name)
    if stated is None:
        return f"{name:<21} TTFT knee: {shown} (no knee stated)"
    lo, hi = stated
    verdict = "ok" if found is not None and lo <= found <= hi else "NOT MET"
    return f"{name:<21} TTFT knee: {shown}; stated {lo}-{hi}: {verdict}"


def idle_latency(prof: EngineProfile, prompt: int, output: int) -> tuple[float, float]:
    """(TTFT, TPOT) of one request alone on an idle engine."""
    loop = _ClosedLoop(prof, Workload(), 0, 0, refill=False)
    loop.engine.submit(Request(1, prompt, output, 0.0), 0.0)
    loop.run(10_000.0)
    req = loop.done[0]
    return req.first_token, req.tpot or 0.0


def main() -> None:
    wl = Workload()
    print(
        "preset                 capacity  idle TTFT  idle TPOT | 1000 prompts at once, 256 slots: "
        "duration  req/s  out tok/s  TTFT mean  TPOT mean"
    )
    for name, prof in PRESETS.items():
        ttft, tpot = idle_latency(prof, 230, 203)
        a = anchor(prof.with_overrides({"max_seqs": 256}), wl)
        print(
            f"{name:<21} {capacity(prof, wl):>6.2f}/s {ttft * 1000:>8.1f}ms {tpot * 1000:>8.1f}ms | "
            f"{a['duration']:>38.1f}s {a['throughput_rps']:>6.2f} {a['output_tok_s']:>10.0f} "
            f"{a['ttft_mean']:>9.2f}s {a['tpot_mean'] * 1000:>8.1f}ms"
        )
    print("\nclosed loops, seed 3: mean TTFT / TPOT in ms at N clients; mean waiting queue and KV use at N clients")
    for name, (light, heavy) in PUBLISHED_CHECKS.items():
        prof = PRESETS[name]
        cells = [closed_loop(prof, wl, n) for n in light]
        print(
            f"{name:<21} "
            + "  ".join(f"{n}: {c['ttft_mean'] * 1000:.1f} / {c['tpot_mean'] * 1000:.1f}" for n, c in zip(light, cells))
        )
        cells = [closed_loop(prof, wl, n) for n in heavy]
        print(
            f"{'':<21} "
            + "  ".join(f"{n}: waiting {c['waiting_mean']:.1f}, KV {c['kv_mean']:.0%}" for n, c in zip(heavy, cells))
        )
    print(
        f"\nTTFT knees: the last concurrency at which one engine's closed-loop mean TTFT is below "
        f"{KNEE_FACTOR:g}x its TTFT at {KNEE_LIGHT} clients"
    )
    for name in PUBLISHED_CHECKS:
        print(knee_check(name, PRESETS[name], wl))


if __name__ == "__main__":
    main()
