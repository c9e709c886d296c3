"""One inference engine as a discrete-event model of vLLM's continuous batching (V1 scheduler, chunked prefill).

Each step (iteration) runs every decoding sequence one token forward and spends the rest of the token budget
(`max_batched_tokens`) on prompt chunks: first of sequences already admitted, then of waiting ones admitted in
arrival order while a batch slot is free and the KV cache can hold the whole prompt (head-of-line blocking,
as vLLM's FCFS scheduler). A sequence whose prompt is fully processed emits its first token at the end of that
step (TTFT) and one more at the end of each later step. When the next step's KV growth (one token per decoding
sequence) would not fit, the most recently started sequence is preempted and recomputed later (vLLM's
recompute preemption: it goes back to the head of the queue with prompt + generated tokens to prefill).
Step duration: bench/sim/profiles.py.

Prefix caching (vLLM's automatic prefix caching), for requests that carry their prompt's block ids (`blocks`,
bench/sim/prefixes.py): a request admitted finds the longest run of its leading 16-token blocks already
computed, on this engine, and skips their prefill (the last prompt token is always computed). Blocks held by
admitted sequences are shared and count once in the KV cache (`shared`); a sequence's own blocks join them when
its prefill completes. Freed blocks stay cached in the free part of the KV cache and are evicted least recently
used first, a sequence's tail before its start, when running sequences need the room.

The per-step cost is independent of the batch size: a decoding sequence's progress is derived from the
engine's step counter (`tick`), and finishing sequences come off a heap ordered by their last tick.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import OrderedDict, deque
from typing import Protocol

from llmsched.bench.sim.profiles import EngineProfile

WAITING, PREFILLING, DECODING, DONE, FAILED = range(5)
BLOCK = 16  # tokens per KV-cache block (vLLM's default block size; bench/sim/prefixes.py BLOCK_TOKENS)


class Request:
    __slots__ = (
        "rid",
        "prompt",
        "output",
        "arrival",
        "main",
        "engine",
        "first_token",
        "finished",
        "state",
        "remaining",
        "kv_prompt",
        "prefilled",
        "join",
        "finish_tick",
        "epoch",
        "client",
        "blocks",
        "fps",
        "conv",
        "turn",
        "cached",
        "held",
        "expect",
    )

    def __init__(self, rid: int, prompt: int, output: int, arrival: float, main: bool = True) -> None:
        self.rid = rid
        self.prompt = prompt
        self.output = output
        self.arrival = arrival  # when the client sent it (TTFT and end-to-end latency start here)
        self.main = main  # False: background load sent straight to the engine
        self.engine = -1
        self.first_token: float | None = None
        self.finished: float | None = None
        self.state = WAITING
        self.remaining = output  # output tokens not produced yet
        self.kv_prompt = prompt  # tokens to (re)compute before the next token
        self.prefilled = 0
        self.join = 0  # tick at which it started decoding
        self.finish_tick = 0
        self.epoch = 0  # bumped on every (re)start of decoding: stale heap entries are skipped
        self.client = -1  # closed-loop client that sent it (-1: open-loop or background)
        self.blocks: tuple[int, ...] | None = None  # ids of its prompt's full blocks (prefix caching), or None
        self.fps: tuple[int, ...] = ()  # the fingerprints the iRule sends for it
        self.conv: object = None  # the conversation it belongs to (bench/sim/prefixes.py) and its turn
        self.turn = 0
        self.cached: int | None = None  # prompt tokens found in the cache at its first admission
        self.held = 0  # leading blocks it holds a reference on
        self.expect = 0  # tokens it would find cached, as of when it was queued (the oracle's estimate)

    @property
    def tpot(self) -> float | None:
        """Time per output token after the first, as vLLM's benchmark defines it."""
        if self.first_token is None or self.finished is None or self.output <= 1:
            return None
        return (self.finished - self.first_token) / (self.output - 1)


class Listener(Protocol):
    def first_token(self, req: Request, now: float) -> None: ...
    def finished(self, req: Request, now: float) -> None: ...
    def failed(self, req: Request, now: float) -> None: ...


class Engine:
    def __init__(self, index: int, name: str, profile: EngineProfile, listener: Listener) -> None:
        self.index = index
        self.name = name
        self.p = profile
        self.listener = listener
        self.up = True
        self.generation = 0  # bumped on failure: a step scheduled before it is void
        self.busy = False
        self.step_end = 0.0
        self.tick = 0
        self.waiting: deque[Request] = deque()
        self.prefilling: list[Request] = []
        self.heap: list[tuple[int, int, int, Request]] = []  # (finish_tick, rid, epoch, req)
        self.order: list[Request] = []  # decoding sequences in start order (may hold stale entries)
        self.n_dec = 0
        self.dec_const = 0  # sum over decoding sequences of (kv_prompt - join)
        self.prefill_kv = 0  # KV held by admitted sequences still in prefill (whole prompt reserved)
        self.chunks: list[tuple[Request, int]] = []
        self.steps = 0
        self.refs: dict[int, int] = {}  # block id -> admitted sequences holding it
        self.free_cached: OrderedDict[int, None] = OrderedDict()  # cached blocks nobody holds, LRU first
        self.shared = 0  # KV tokens counted more than once by the sequences sharing blocks
        # Requests the last step's admission left waiting: what vLLM exports as num_requests_waiting. V1's
        # engine core moves new requests from its input queue into the scheduler's waiting queue right before
        # schedule() and records the scheduler stats after the step, so a request that arrived during a step
        # and is admitted by the next one is never counted; only those that admission turned away are.
        self.blocked = 0
        # Requests on their way in (profile path latency): (ready time, rid, request), not yet in `waiting`.
        self.inbound: list[tuple[float, int, Request]] = []
        self.path_rng = random.Random(7919 * index + 17)

    # --- state -------------------------------------------------------------------------------------------
    @property
    def kv_used(self) -> int:
        return self.prefill_kv + self.dec_const + self.n_dec * self.tick - self.shared

    @property
    def running(self) -> int:
        return self.n_dec + len(self.prefilling)

    def sample(self) -> tuple[float, float, float]:
        """What its /metrics would say now: (num_requests_waiting, num_requests_running, kv_cache_usage_perc)."""
        return float(self.blocked), float(self.running), self.kv_used / self.p.kv_tokens

    # --- requests in -------------------------------------------------------------------------------------
    def submit(self, req: Request, now: float) -> bool:
        """Queue a request; False (and the request failed) when the engine is down."""
        req.engine = self.index
        if not self.up:
            req.state = FAILED
            self.listener.failed(req, now)
            return False
        req.state = WAITING
        if req.blocks:
            req.expect = self.cached_blocks(req.blocks) * BLOCK
        p = self.p
        if p.path_latency_max > 0:
            ready = now + self.path_rng.uniform(p.path_latency_min, p.path_latency_max)
            heapq.heappush(self.inbound, (ready, req.rid, req))
        else:
            self.waiting.append(req)
        return True

    # --- one step ----------------------------------------------------------------------------------------
    def start_step(self, now: float) -> float | None:
        """Schedule the next step; its duration, or None when there is nothing to do (the engine idles)."""
        p = self.p
        inbound = self.inbound
        while inbound and inbound[0][0] <= now:
            self.waiting.append(heapq.heappop(inbound)[2])
        while self.n_dec and self.kv_used + self.n_dec > p.kv_tokens:
            self._preempt_newest()
        budget = p.max_batched_tokens - self.n_dec
        chunks: list[tuple[Request, int]] = []
        prefill_tokens = 0
        for req in self.prefilling:
            if budget <= 0:
                break
            take = min(req.kv_prompt - req.prefilled, budget)
            chunks.append((req, take))
            budget -= take
            prefill_tokens += take
        while self.waiting and budget > 0 and self.running < p.max_seqs:
            req = self.waiting[0]
            hit = self._hit(req)
            if self.kv_used + req.kv_prompt - self._shared_tokens(req, hit) > p.kv_tokens:
                break
            self.waiting.popleft()
            req.state = PREFILLING
            req.prefilled = 0
            if hit:
                self._hold(req, hit)
                req.prefilled = hit * BLOCK
            if req.blocks is not None and req.cached is None:
                req.cached = hit * BLOCK
            self.prefilling.append(req)
            self.prefill_kv += req.kv_prompt
            take = min(req.kv_prompt - req.prefilled, budget)
            chunks.append((req, take))
            budget -= take
            prefill_tokens += take
        if self.free_cached:
            self._trim()
        self.blocked = len(self.waiting)
        if not chunks and not self.n_dec:
            if inbound:  # idle until the next request on its way in reaches the scheduler: an empty step
                self.chunks = []
                self.busy = True
                self.step_end = inbound[0][0]
                return self.step_end - now
            self.busy = False
            return None
        self.chunks = chunks
        self.busy = True
        duration = p.step_base + p.step_per_seq * (self.n_dec + len(chunks))
        if p.weights_read > 0:  # roofline: the weight and KV reads overlap the compute of every token in the step
            memory = p.weights_read + p.step_per_ctx_token * self.kv_used
            duration += max(memory, (self.n_dec + prefill_tokens) / p.prefill_rate)
        else:
            duration += p.step_per_ctx_token * self.kv_used + prefill_tokens / p.prefill_rate
        self.step_end = now + duration
        return duration

    def end_step(self, now: float) -> None:
        if not self.chunks and not self.n_dec:  # an empty step, waiting for a request on its way in
            return
        self.tick += 1
        self.steps += 1
        tick = self.tick
        completed = False
        for req, take in self.chunks:
            req.prefilled += take
            if req.prefilled >= req.kv_prompt:
                completed = True
                self.prefill_kv -= req.kv_prompt
                if req.blocks:
                    self._hold(req, len(req.blocks))
                req.remaining -= 1
                if req.first_token is None:
                    req.first_token = now
                    self.listener.first_token(req, now)
                if req.remaining <= 0:
                    self._finish(req, now)
                else:
                    self._start_decoding(req, tick)
        self.chunks = []
        if completed:
            self.prefilling = [r for r in self.prefilling if r.state == PREFILLING]
        heap = self.heap
        while heap and heap[0][0] <= tick:
            _, _, epoch, req = heapq.heappop(heap)
            if req.state != DECODING or req.epoch != epoch:
                continue
            self.n_dec -= 1
            self.dec_const -= req.kv_prompt - req.join
            req.remaining = 0
            self._finish(req, now)

    # --- failures ----------------------------------------------------------------------------------------
    def fail(self, now: float) -> None:
        """The server dies: everything in it fails, and so will every request sent to it until it recovers."""
        self.up = False
        self.generation += 1
        lost = (
            [r for _, _, r in sorted(self.inbound)]
            + list(self.waiting)
            + self.prefilling
            + [r for r in self.order if r.state == DECODING]
        )
        self._reset()
        for req in lost:
            req.state = FAILED
            self.listener.failed(req, now)

    def recover(self) -> None:
        self.up = True
        self._reset()

    # --- oracle ------------------------------------------------------------------------------------------
    def predict_ttft(self, prompt: int, now: float, cached: int = 0) -> float:
        """TTFT a new request would see here, from the exact state (perfect knowledge, no future arrivals);
        `cached`: its prompt tokens this engine's prefix cache holds (their prefill is skipped)."""
        if not self.up:
            return math.inf
        p = self.p
        prompt -= cached
        step = p.step_base + p.step_per_seq * (self.running + 1) + p.step_per_ctx_token * self.kv_used
        ahead = (
            sum(r.kv_prompt - r.expect for r in self.waiting)
            + sum(r.kv_prompt - r.prefilled for r in self.prefilling)
            + sum(r.kv_prompt - r.expect for _, _, r in self.inbound)
        )
        wait = 0.0
        slots_short = len(self.waiting) + 1 - (p.max_seqs - self.running)
        kv_short = sum(r.kv_prompt for r in self.waiting) + prompt - (p.kv_tokens - self.kv_used)
        if slots_short > 0 or kv_short > 0:
            wait = math.inf
            freed = count = 0
            for finish, _, epoch, req in sorted(self.heap):
                if req.state != DECODING or req.epoch != epoch:
                    continue
                count += 1
                freed += req.kv_prompt - req.join + finish
                if count >= slots_short and freed >= kv_short:
                    wait = (finish - self.tick) * step
                    break
        budget = max(1, p.max_batched_tokens - self.n_dec)
        prefill = (ahead + prompt) / p.prefill_rate + step * math.ceil((ahead + prompt) / budget)
        in_step = max(0.0, self.step_end - now) if self.busy else 0.0
        return (p.path_latency_min + p.path_latency_max) / 2 + in_step + wait + prefill

    # --- prefix cache ------------------------------------------------------------------------------------
    def cached_blocks(self, blocks: tuple[int, ...]) -> int:
        """How many leading blocks of a prompt are computed here (held by a sequence or cached free)."""
        refs, free = self.refs, self.free_cached
        n = 0
        for b in blocks:
            if b not in refs and b not in free:
                break
            n += 1
        return n

    def _hit(self, req: Request) -> int:
        """Leading blocks a request would reuse if admitted now; the last prompt token is always computed."""
        if not req.blocks:
            return 0
        return min(self.cached_blocks(req.blocks), (req.prompt - 1) // BLOCK)

    def _shared_tokens(self, req: Request, hit: int) -> int:
        """KV tokens of its first `hit` blocks that other admitted sequences already hold (they cost nothing)."""
        if not hit or not self.refs:
            return 0
        refs = self.refs
        return BLOCK * sum(1 for b in req.blocks[:hit] if b in refs)  # type: ignore[index]

    def _hold(self, req: Request, upto: int) -> None:
        """Take references on its blocks up to `upto`: shared ones count once, cached free ones are revived."""
        refs, free = self.refs, self.free_cached
        for b in req.blocks[req.held : upto]:  # type: ignore[index]
            count = refs.get(b)
            if count:
                refs[b] = count + 1
                self.shared += BLOCK
            else:
                free.pop(b, None)
                refs[b] = 1
        req.held = max(req.held, upto)

    def _release(self, req: Request) -> None:
        """Drop its references; blocks nobody holds stay cached, the prompt's start most recently used."""
        if not req.held:
            return
        refs, free = self.refs, self.free_cached
        for b in reversed(req.blocks[: req.held]):  # type: ignore[index]
            count = refs[b]
            if count > 1:
                refs[b] = count - 1
                self.shared -= BLOCK
            else:
                del refs[b]
                free[b] = None
        req.held = 0
        self._trim()

    def _trim(self) -> None:
        """Evict cached free blocks, least recently used first, down to the free part of the KV cache."""
        room = max(0, (self.p.kv_tokens - self.kv_used) // BLOCK)
        free = self.free_cached
        while len(free) > room:
            free.popitem(last=False)

    # --- internals ---------------------------------------------------------------------------------------
    def _start_decoding(self, req: Request, tick: int) -> None:
        req.state = DECODING
        req.join = tick
        req.finish_tick = tick + req.remaining
        req.epoch += 1
        self.n_dec += 1
        self.dec_const += req.kv_prompt - tick
        heapq.heappush(self.heap, (req.finish_tick, req.rid, req.epoch, req))
        self.order.append(req)
        if len(self.order) > 4 * self.n_dec + 64:
            self.order = [r for r in self.order if r.state == DECODING]

    def _preempt_newest(self) -> None:
        while self.order:
            req = self.order.pop()
            if req.state != DECODING:
                continue
            produced = self.tick - req.join
            self.n_dec -= 1
            self.dec_const -= req.kv_prompt - req.join
            req.remaining -= produced
            self._release(req)
            req.kv_prompt = req.prompt + (req.output - req.remaining)
            req.state = WAITING
            self.waiting.appendleft(req)
            return
        raise AssertionError("KV over capacity with no decoding sequence to preempt")

    def _finish(self, req: Request, now: float) -> None:
        self._release(req)
        req.state = DONE
        req.finished = now
        self.listener.finished(req, now)

    def _reset(self) -> None:
        self.busy = False
        self.inbound = []
        self.waiting.clear()
        self.prefilling = []
        self.heap = []
        self.order = []
        self.chunks = []
        self.n_dec = self.dec_const = self.prefill_kv = self.blocked = 0
        self.refs = {}
        self.free_cached = OrderedDict()
        self.shared = 0
