"""The discrete-event loop: one scenario, one policy -> per-request timings -> one result row.

Open-loop arrivals: every policy of a scenario sees the same client requests (same arrival instants and
lengths, drawn once from the seed), so differences between rows come from routing alone. Closed-loop arrivals:
each client sends its next request the moment the previous one completes (no think time), until the end of
`duration`; client c's k-th request has the same lengths under every policy (one length stream per client), only
the instants follow the latencies. A client whose request fails (engine down, no member up) tries again
`CLIENT_RETRY` later. Sessions (workload.sessions): a session's first turn arrives open-loop, each later turn
`think` after the previous answer (its content drawn once from the seed, its instant following the latencies);
a failed turn ends its session. A request a scheduling policy places reaches its engine the pipeline's
`decision_latency` later (the iRule's sideband call; BIG-IP's own methods decide inline). Events: client
arrivals, forwards, engine steps, scrape cycles (read, then write), scoring jobs,
poller fetches, BIG-IP monitor probes, failures and recoveries.
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass

from llmsched.bench.sim import calibrate
from llmsched.bench.sim.engine import Engine, Request
from llmsched.bench.sim.pipeline import SCRAPER_JITTER_FRACTION, SCRAPER_JITTER_MAX, Pipeline
from llmsched.bench.sim.policies import (
    NO_PREFIX_SUFFIX,
    LeastConn,
    ModePolicy,
    Oracle,
    Policy,
    PrefixOnly,
    RandomPolicy,
    RoundRobin,
    View,
    mode_policy,
)
from llmsched.bench.sim.prefixes import FP_TOKENS, Conversation, Prefixes, PrefixIndex, Turn, chain_ids, fingerprints
from llmsched.bench.sim.scenario import Scenario
from llmsched.bench.sim.stats import Result, summarize
from llmsched.shared.config_model import DEFAULT_MODE, Config, ModeConfig, PoolConfig, SchedulerConfig
from llmsched.shared.publish import pool_routing_doc

BACKGROUND_RETRY = 1.0  # s before a background client whose engine is down tries again
CLIENT_RETRY = 1.0  # s before a closed-loop client whose request failed sends its next one
# s between two clients' first requests in a benchmark run (arrivals.prompts): vLLM's benchmark client starts them
# "at once" from one asyncio loop, which sets up one HTTP session and connection per request in turn
BENCH_LAUNCH = 0.0002

ARRIVE, STEP, SCRAPE, WRITE, SCORE, POLL, PROBE, MARK_DOWN, FAIL, RECOVER, BG_RETRY, CLIENT_SEND = range(12)
NEXT_TURN, FORWARD = 12, 13
MAX_TURNS = 256  # a session's turns are capped (segment ids: 2 per turn, 512 per conversation)
OWN_SEGMENTS = 1 << 24  # first segment id of the requests' own parts (prefix groups use 1..groups)
CLIENT_SEGMENTS = 1 << 40  # closed-loop clients' requests, by request id


@dataclass(frozen=True)
class Prepared:
    """A scenario with its client requests drawn and its arrival rate resolved."""

    scenario: Scenario
    seed: int
    rate: float
    capacity: tuple[float, ...]
    background: tuple[float, ...]
    requests: tuple[tuple[float, int, int], ...]  # (arrival, prompt tokens, output tokens)
    conversations: tuple[Conversation, ...] = ()  # one per request: its prefix group and session turns
    group_tokens: tuple[int, ...] = ()  # each prefix group's length


def prepare(scenario: Scenario, seed: int | None = None) -> Prepared:
    seed = scenario.seed if seed is None else seed
    cold = scenario.workload.cold()  # prefixes count in full: load is relative to serving them without a cache
    caps = tuple(calibrate.capacity(e.profile, cold) for e in scenario.engines)  # type: ignore[arg-type]
    bg = [0.0] * len(scenario.engines)
    for b in scenario.background:
        i = scenario.engine_index(b.engine)
        bg[i] += calibrate.background_rate(scenario.engines[i].profile, cold, b.concurrency)  # type: ignore[arg-type]
    wl = scenario.workload
    groups = tuple(wl.prefixes.lengths(random.Random(seed * 7919 + 3))) if wl.prefixes else ()
    if scenario.arrivals.closed:  # the clients' own pace sets the rate; their lengths are drawn as they send
        return Prepared(scenario, seed, 0.0, caps, tuple(bg), (), (), groups)
    available = max(0.0, sum(caps) - sum(bg))
    rate = scenario.load * available
    if wl.sessions is not None:  # sessions start at the rate that gives `rate` requests per second
        rate /= wl.sessions.turns_mean
    times_rng, lengths_rng = random.Random(seed * 7919 + 1), random.Random(seed * 7919 + 2)
    requests = tuple(
        (t, *scenario.workload.draw(lengths_rng))
        for t in scenario.arrivals.times(rate, 0.0, scenario.duration, times_rng)
    )
    return Prepared(
        scenario, seed, rate, caps, tuple(bg), requests, conversations(scenario, seed, requests, groups), groups
    )


def conversations(
    scenario: Scenario, seed: int, requests: tuple[tuple[float, int, int], ...], groups: tuple[int, ...]
) -> tuple[Conversation, ...]:
    """Each open-loop request's conversation: its prefix group, and with sessions its later turns (drawn from
    their own streams, so the first turns are the requests a scenario without prefixes would have)."""
    wl = scenario.workload
    group_rng, turn_rng = random.Random(seed * 7919 + 4), random.Random(seed * 7919 + 5)
    cumulative = wl.prefixes.chooser() if wl.prefixes else []
    out = []
    for i, (_, prompt, output) in enumerate(requests):
        group = Prefixes.pick(cumulative, group_rng) if wl.prefixes else -1
        turns = [Turn(prompt, output, 0.0)]
        if wl.sessions is not None:
            for _ in range(min(MAX_TURNS, wl.sessions.turns(turn_rng)) - 1):
                own, out_tokens = wl.draw(turn_rng)
                think = turn_rng.expovariate(1.0 / wl.sessions.think_mean) if wl.sessions.think_mean > 0 else 0.0
                turns.append(Turn(own, out_tokens, think))
        tokens = groups[group] if group >= 0 else 0
        out.append(Conversation(group, tokens, OWN_SEGMENTS + 2 * MAX_TURNS * i, tuple(turns)))
    return tuple(out)


def make_request(rid: int, conv: Conversation, turn: int, arrival: float, cache: bool) -> Request:
    """A request with its prompt's content: fingerprints always (the iRule sends them), cache block ids when
    prompts share content (`cache`); without sharing no block could ever hit, and the engine skips the work."""
    segments = conv.segments(turn)
    req = Request(rid, sum(n for _, n in segments), conv.turns[turn].output, arrival)
    req.conv, req.turn = conv, turn
    req.fps = fingerprints(segments)
    if cache:
        req.blocks = chain_ids(segments, 16)
    return req


def client_rng(seed: int, client: int) -> random.Random:
    """Client `client`'s length stream: the same under every policy of a run."""
    return random.Random(seed * 7919 + 1_000_003 * (client + 1))


def config_doc(scenario: Scenario, mode: str, weights: dict, herd: bool) -> dict:
    """The pool's routing document, written by shared/publish.py from the config a user would write."""
    pipe = scenario.pipeline
    pool = PoolConfig(name="sim_pool", engine_type="vllm")
    config = Config(
        scheduler=SchedulerConfig(
            metrics_fetch_interval=int(pipe.scrape_interval * 1000),
            stale_after=pipe.effective_stale_after,
            herd_control=herd,
        ),
        modes=(ModeConfig(name=mode, **weights),),
        pools=(pool,),
    )
    return pool_routing_doc(config, pool)


def make_policy(name: str, prepared: Prepared) -> tuple[Policy, dict | None]:
    """The policy and, for scoring modes, the pool's routing config."""
    sc, seed = prepared.scenario, prepared.seed
    replicas = sc.pipeline.replicas
    if name == "random":
        return RandomPolicy(random.Random(seed)), None
    if name == "round_robin":
        return RoundRobin(), None
    if name == "least_conn":
        return LeastConn(), None
    if name == "oracle":
        return Oracle(), None
    if name == "prefix_only":
        return PrefixOnly(random.Random(seed)), None
    if name == "default" + NO_PREFIX_SUFFIX:  # today's default: the iRule sends no fingerprints
        return ModePolicy(name, True, replicas, seed, stream="default"), config_doc(sc, DEFAULT_MODE, {}, True)
    parsed = mode_policy(name)
    if parsed is None:
        raise ValueError(f"unknown policy {name!r}")
    mode, herd = parsed
    if mode == "default":
        return ModePolicy(name, herd, replicas, seed, prefix=True), config_doc(sc, DEFAULT_MODE, {}, herd)
    return ModePolicy(name, herd, replicas, seed), config_doc(sc, mode, sc.mode_weights(mode), herd)


class Simulation:
    def __init__(self, prepared: Prepared, policy_name: str) -> None:
        sc = prepared.scenario
        self.p = prepared
        self.sc = sc
        self.rng = random.Random(prepared.seed * 31 + 5)
        self.bg_rng = random.Random(prepared.seed * 31 + 6)
        self.engines = [Engine(i, e.name, e.profile, self) for i, e in enumerate(sc.engines)]
        self.policy, config = make_policy(policy_name, prepared)
        self.pipeline = Pipeline(config or {}, self.engines, [e.ratio for e in sc.engines], sc.pipeline.dispatch_delay)
        n = len(self.engines)
        self.view = View(self.engines, [True] * n, [0] * n, self.pipeline)
        # the prefix index, each member's LRU sized from the KV capacity its engine publishes
        capacity = [max(1, e.profile.kv_tokens // FP_TOKENS) for e in sc.engines]
        self.view.index = PrefixIndex(self.pipeline.ids, capacity, sc.pipeline.dispatch_delay)
        self.cache = sc.workload.shaped
        self.group_cumulative = sc.workload.prefixes.chooser() if sc.workload.prefixes else []
        self.uses_pipeline = config is not None
        self.events: list[tuple] = []
        self.counter = itertools.count()
        self.main: list[Request] = []
        self.unresolved = 0
        self.last_success = [0.0] * n
        self.rid = itertools.count(1)
        clients = sc.arrivals.concurrency if sc.arrivals.closed else 0
        self.client_rngs = [client_rng(prepared.seed, c) for c in range(clients)]
        self.prompts_left = sc.arrivals.prompts if clients else 0  # a benchmark run's budget (0: none)

    # --- event queue -------------------------------------------------------------------------------------
    def at(self, t: float, kind: int, a: object = None, b: object = None) -> None:
        heapq.heappush(self.events, (t, next(self.counter), kind, a, b))

    def kick(self, engine: Engine, now: float) -> None:
        if not engine.busy and engine.up:
            duration = engine.start_step(now)
            if duration is not None:
                self.at(now + duration, STEP, engine.index, engine.generation)

    # --- engine listener ---------------------------------------------------------------------------------
    def first_token(self, req: Request, now: float) -> None:
        pass

    def finished(self, req: Request, now: float) -> None:
        if req.main:
            self.view.conns[req.engine] -= 1
            self._resolved(req, now, 0.0)
        else:
            self._background_send(req.engine, now)

    def failed(self, req: Request, now: float) -> None:
        if req.main:
            self.view.conns[req.engine] -= 1
            self._resolved(req, now, CLIENT_RETRY)
        else:
            self.at(now + BACKGROUND_RETRY, BG_RETRY, req.engine)

    def _resolved(self, req: Request, now: float, pause: float) -> None:
        """A main request is over: an open-loop one is done; a closed-loop client sends its next one (after
        `pause`) until the end of the run, and only then stops counting as unresolved."""
        conv = req.conv
        if req.client >= 0 and now + pause < self.sc.duration:
            self.at(now + pause, CLIENT_SEND, req.client)
        elif (
            pause == 0.0
            and isinstance(conv, Conversation)
            and req.turn + 1 < len(conv.turns)
            and now + conv.turns[req.turn + 1].think < self.sc.duration
        ):
            self.at(now + conv.turns[req.turn + 1].think, NEXT_TURN, conv, req.turn + 1)
        else:
            self.unresolved -= 1

    def _client_send(self, now: float, client: int, _: object = None) -> None:
        if self.sc.arrivals.prompts:
            if self.prompts_left <= 0:  # the benchmark has sent all its prompts: this client is done
                self.unresolved -= 1
                return
            self.prompts_left -= 1
        rng = self.client_rngs[client]
        prompt, output = self.sc.workload.draw(rng)
        rid = next(self.rid)
        group = Prefixes.pick(self.group_cumulative, rng) if self.group_cumulative else -1
        tokens = self.p.group_tokens[group] if group >= 0 else 0
        conv = Conversation(group, tokens, CLIENT_SEGMENTS + 2 * MAX_TURNS * rid, (Turn(prompt, output, 0.0),))
        req = make_request(rid, conv, 0, now, self.cache)
        req.client = client
        self.main.append(req)
        self._arrive(now, req, None)

    def _background_send(self, index: int, now: float) -> None:
        p, o = self.sc.workload.draw(self.bg_rng)
        req = Request(next(self.rid), p, o, now, main=False)
        engine = self.engines[index]
        if engine.submit(req, now):
            self.kick(engine, now)

    # --- run ---------------------------------------------------------------------------------------------
    def run(self) -> Result:
        sc, pipe = self.sc, self.sc.pipeline
        convs = self.p.conversations
        for i, (t, prompt, output) in enumerate(self.p.requests):
            if convs:
                req = make_request(next(self.rid), convs[i], 0, t, self.cache)
            else:
                req = Request(next(self.rid), prompt, output, t)
            self.main.append(req)
            self.at(t, ARRIVE, req)
        self.unresolved = len(self.main) + len(self.client_rngs)
        for c in range(len(self.client_rngs)):  # every client starts at once, like --max-concurrency
            # a benchmark run starts on warmed-up servers, its clients one connection set-up apart
            self.at(sc.warmup + c * BENCH_LAUNCH if sc.arrivals.prompts else 0.0, CLIENT_SEND, c)
        for b in sc.background:
            for _ in range(b.concurrency):
                self._background_send(sc.engine_index(b.engine), 0.0)
        for f in sc.failures:
            self.at(f.at, FAIL, sc.engine_index(f.engine))
            if f.recover is not None:
                self.at(f.recover, RECOVER, sc.engine_index(f.engine))
        for i in range(len(self.engines)):
            self.at(self.rng.uniform(0, sc.bigip.monitor_interval), PROBE, i)
        self.pipeline.poll(0.0, self.view.up)
        if self.uses_pipeline:
            self.at(self.rng.uniform(0, pipe.pool_fetch_interval), POLL)
            self.at(0.0, SCRAPE, 0)
        horizon = sc.duration * 4 + 600.0
        handlers = {
            ARRIVE: self._arrive,
            STEP: self._step,
            SCRAPE: self._scrape,
            WRITE: self._write,
            SCORE: self._score,
            POLL: self._poll,
            PROBE: self._probe,
            MARK_DOWN: self._mark_down,
            FAIL: self._fail,
            RECOVER: self._recover,
            BG_RETRY: self._bg_retry,
            CLIENT_SEND: self._client_send,
            NEXT_TURN: self._next_turn,
            FORWARD: self._forward,
        }
        events = self.events
        now = 0.0
        while events and self.unresolved > 0:
            now, _, kind, a, b = heapq.heappop(events)
            if now > horizon:
                break
            handlers[kind](now, a, b)
        return summarize(self.policy.name, self.p, self.main, self.view, now)

    # --- handlers ----------------------------------------------------------------------------------------
    def _arrive(self, now: float, req: Request, _: object) -> None:
        choice = self.policy.choose(now, req, self.view)
        if choice is None:  # BIG-IP has no member up: the connection fails
            req.engine = -1
            self._resolved(req, now, CLIENT_RETRY)
            return
        self.view.conns[choice] += 1
        delay = self.sc.pipeline.decision_latency if self.uses_pipeline else 0.0
        if delay > 0:  # BIG-IP forwards the request once the sideband answer is back
            self.at(now + delay, FORWARD, req, choice)
        else:
            self._forward(now, req, choice)

    def _forward(self, now: float, req: Request, choice: int) -> None:
        engine = self.engines[choice]
        if engine.submit(req, now):
            self.kick(engine, now)

    def _step(self, now: float, index: int, generation: int) -> None:
        engine = self.engines[index]
        if generation != engine.generation:
            return
        engine.end_step(now)
        engine.busy = False
        self.kick(engine, now)

    def _scrape(self, now: float, cycle: int, _: object) -> None:
        pipe = self.sc.pipeline
        docs = self.pipeline.scrape(now + pipe.scrape_latency, pipe.scrape_latency)
        self.at(now + pipe.scrape_latency, WRITE, docs)
        jitter = self.rng.uniform(0, min(SCRAPER_JITTER_FRACTION * pipe.scrape_interval, SCRAPER_JITTER_MAX))
        self.at((cycle + 1) * pipe.scrape_interval + jitter, SCRAPE, cycle + 1)

    def _write(self, now: float, docs: dict, _: object) -> None:
        self.pipeline.write_metrics(now, docs)
        self.at(now + self.sc.pipeline.scoring_latency, SCORE)

    def _score(self, now: float, *_: object) -> None:
        self.pipeline.score(now)

    def _poll(self, now: float, *_: object) -> None:
        self.pipeline.poll(now, self.view.up)
        self.at(now + self.sc.pipeline.pool_fetch_interval, POLL)

    def _probe(self, now: float, index: int, _: object) -> None:
        if self.engines[index].up:
            self.last_success[index] = now
            self.view.up[index] = True
        self.at(now + self.sc.bigip.monitor_interval, PROBE, index)

    def _mark_down(self, now: float, index: int, _: object) -> None:
        if not self.engines[index].up:
            self.view.up[index] = False

    def _fail(self, now: float, index: int, _: object) -> None:
        self.engines[index].fail(now)
        self.at(max(now, self.last_success[index] + self.sc.bigip.monitor_timeout), MARK_DOWN, index)

    def _recover(self, now: float, index: int, _: object) -> None:
        # BIG-IP marks it up at its next successful probe; background clients return through BG_RETRY.
        self.engines[index].recover()

    def _next_turn(self, now: float, conv: Conversation, turn: int) -> None:
        req = make_request(next(self.rid), conv, turn, now, self.cache)
        self.main.append(req)
        self._arrive(now, req, None)

    def _bg_retry(self, now: float, index: int, _: object) -> None:
        self._background_send(index, now)


def run(prepared: Prepared, policy: str) -> Result:
    return Simulation(prepared, policy).run()
