"""Routing policies: who picks the engine for each request.

* `random`, `round_robin`, `least_conn`: BIG-IP's own load balancing methods. `least_conn` counts the
  connections BIG-IP itself holds open to each member, exactly and instantly; it cannot see load that does not
  pass through it (background traffic). Ties go to the next member after the last pick.
* every scoring mode (`s1`, ..., and `default`, llmsched's default mode): the iRule asks a decision API
  replica, which runs the real `llmsched.shared.routing.decide.decide` on the snapshot the real scoring step built
  (bench/sim/pipeline.py). An answer of `none` (or `fallback`, which no scenario sets) makes BIG-IP balance
  that request itself with least connections. Under its plain name a mode runs as a config would run it today:
  with herd control on (scheduler.herd_control defaults to true), every decision counted in the dispatch
  counters shared by all replicas and the pick a weighted round robin on them (shared/routing/herd.py).
  `<mode>_no_herd` is the same mode with herd control off: the weighted random pick, which is what the
  original did.
* `oracle`: perfect, instant knowledge of every engine's exact state, prefix cache included; picks the least
  predicted TTFT.
* Prefix-aware routing (bench/sim/prefixes.py): requests carry the iRule's prompt fingerprints. `default` passes
  the shared prefix index's matches to `decide(..., prefix=...)` (the sticky pick of
  llmsched.shared.routing.prefix) and records its answer in the index; `default_no_prefix` is today's default,
  which sends no fingerprints. `prefix_only` picks the longest match in the same index and ignores load (no match:
  a random member), like a router that routes on the cache alone.
Only members BIG-IP considers up are offered (the iRule sends `active_members`).
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass

from llmsched.bench.sim.engine import BLOCK, Engine, Request
from llmsched.bench.sim.pipeline import Pipeline
from llmsched.bench.sim.prefixes import PrefixIndex
from llmsched.shared.routing.decide import decide

# The original's suggested weights per mode (its README); dynamic modes keep transition_point 30,
# steepness 1.0.
ORIGINAL_WEIGHTS: dict[str, dict[str, float]] = {
    "s1": {"w_a": 0.1, "w_b": 0.9},
    "s1_enhanced": {"w_a": 0.2, "w_b": 0.8},
    "s1_ratio": {"w_a": 0.2, "w_b": 0.8},
    "s1_precise": {"w_a": 0.1, "w_b": 0.9},
    "s1_nonlinear": {"w_a": 0.2, "w_b": 0.8},
    "s1_balanced": {"w_a": 0.3, "w_b": 0.7},
    "s1_adaptive_distribution": {"w_a": 0.2, "w_b": 0.8},
    "s1_advanced": {"w_a": 0.6, "w_b": 0.4},
    "s1_dynamic_waiting": {"w_a": 0.3, "w_b": 0.7, "transition_point": 30.0, "steepness": 1.0},
    "s2": {"w_a": 0.6, "w_b": 0.2, "w_g": 0.2},
    "s2_enhanced": {"w_a": 0.4, "w_b": 0.4, "w_g": 0.2},
    "s2_nonlinear": {"w_a": 0.4, "w_b": 0.4, "w_g": 0.2},
    "s2_advanced": {"w_a": 0.5, "w_b": 0.3, "w_g": 0.2},
    "s2_dynamic_waiting": {"w_a": 0.4, "w_b": 0.3, "w_g": 0.3, "transition_point": 30.0, "steepness": 1.0},
}


@dataclass
class View:
    """What a policy may look at: BIG-IP's view (monitor state, open connections) and the engines' truth."""

    engines: list[Engine]
    up: list[bool]
    conns: list[int]
    pipeline: Pipeline
    none_answers: int = 0
    decisions: int = 0
    index: PrefixIndex | None = None  # the prefix index shared by the API replicas
    prefix_picks: int = 0  # decisions the sticky prefix stage answered


class Policy:
    name = ""

    def choose(self, now: float, req: Request, view: View) -> int | None:
        raise NotImplementedError


class RandomPolicy(Policy):
    name = "random"

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def choose(self, now: float, req: Request, view: View) -> int | None:
        up = [i for i, ok in enumerate(view.up) if ok]
        return self.rng.choice(up) if up else None


class RoundRobin(Policy):
    name = "round_robin"

    def __init__(self) -> None:
        self.next = 0

    def choose(self, now: float, req: Request, view: View) -> int | None:
        n = len(view.up)
        for k in range(n):
            i = (self.next + k) % n
            if view.up[i]:
                self.next = i + 1
                return i
        return None


class LeastConn(Policy):
    name = "least_conn"

    def __init__(self) -> None:
        self.next = 0

    def choose(self, now: float, req: Request, view: View) -> int | None:
        n = len(view.up)
        best, best_conns = None, math.inf
        for k in range(n):
            i = (self.next + k) % n
            if view.up[i] and view.conns[i] < best_conns:
                best, best_conns = i, view.conns[i]
        if best is not None:
            self.next = best + 1
        return best


class Oracle(Policy):
    name = "oracle"

    def choose(self, now: float, req: Request, view: View) -> int | None:
        best, best_t = None, math.inf
        for i, engine in enumerate(view.engines):
            if view.up[i]:
                cached = min(engine.cached_blocks(req.blocks) * BLOCK, req.prompt - 1) if req.blocks else 0
                t = engine.predict_ttft(req.prompt, now, cached)
                if t < best_t:
                    best, best_t = i, t
        return best


class PrefixOnly(Policy):
    """Longest match in the shared prefix index, load ignored; no match anywhere: a random member."""

    name = "prefix_only"

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def choose(self, now: float, req: Request, view: View) -> int | None:
        up = [i for i, ok in enumerate(view.up) if ok]
        if not up:
            return None
        ids = view.pipeline.ids
        matched = view.index.matched(now, req.fps) if view.index is not None and req.fps else {}
        best = max((matched.get(ids[i], 0) for i in up), default=0)
        choice = self.rng.choice([i for i in up if matched.get(ids[i], 0) == best])
        if view.index is not None:
            view.index.record(now, ids[choice], req.fps)
        return choice


NO_HERD_SUFFIX = "_no_herd"
NO_PREFIX_SUFFIX = "_no_prefix"


def mode_policy(name: str) -> tuple[str, bool] | None:
    """A scoring-mode policy name -> (mode, herd control on); None when `name` is not one.
    `default` is llmsched's default mode; `<mode>_no_herd` is the same mode with scheduler.herd_control off."""
    herd = not name.endswith(NO_HERD_SUFFIX)
    mode = name if herd else name[: -len(NO_HERD_SUFFIX)]
    if mode == "default" or mode in ORIGINAL_WEIGHTS:
        return mode, herd
    return None


class ModePolicy(Policy):
    """A scoring mode through the real pipeline, answered by one of `replicas` independent API replicas.

    Every decision is `decide(config, snapshot, candidates, now, rng, dispatch=counts)`, as api/decisions.py
    calls it: the pool's published `herd_control` flag chooses between the shared weighted round robin on the
    dispatch counters and the weighted random pick. With herd control the chosen member's counter is
    incremented (visible to every replica after the pipeline's dispatch delay)."""

    def __init__(
        self, name: str, herd: bool, replicas: int, seed: int, prefix: bool = False, stream: str | None = None
    ) -> None:
        self.name = name
        self.herd = herd
        self.prefix = prefix  # send the request's fingerprints and use the shared prefix index
        self.replicas = replicas
        # `stream`: whose random streams to draw from (default_no_prefix draws default's, so that the two differ
        # only where the prefix stage answers)
        base = zlib.crc32((stream or name).encode()) ^ seed
        self.rngs = [random.Random(base * 1000 + r) for r in range(replicas)]
        self.pick_replica = random.Random(base)
        self.fallback = LeastConn()
        self.index: dict[str, int] = {}

    def choose(self, now: float, req: Request, view: View) -> int | None:
        pipe = view.pipeline
        if not self.index:
            self.index = {mid: i for i, mid in enumerate(pipe.ids)}
        candidates = [mid for mid, up in zip(pipe.ids, view.up) if up]
        if not candidates:
            return None
        rng = self.rngs[self.pick_replica.randrange(self.replicas)]
        view.decisions += 1
        index = view.index if self.prefix and req.fps else None
        matched = index.matched(now, req.fps) if index is not None else None
        decision = decide(
            pipe.config, pipe.snapshot, candidates, now, rng, dispatch=pipe.dispatch_counts(now), prefix=matched
        )
        chosen = self.index.get(decision.answer)
        if chosen is None:  # none / fallback: BIG-IP balances with least connections
            view.none_answers += 1
            return self.fallback.choose(now, req, view)
        if self.herd and decision.member_id is not None:
            pipe.record_dispatch(now, decision.member_id)
        if index is not None:
            index.record(now, pipe.ids[chosen], req.fps)
            view.prefix_picks += decision.reason == "prefix"
        return chosen
