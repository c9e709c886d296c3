"""One inference engine as a discrete-event model of vLLM's continuous batching (V1 scheduler, chunked prefill).

Each step (iteration) runs every decoding sequence one token forward and spends the rest of the token budget
(`max_batched_tokens`) on prompt chunks: first of sequences already admitted, then of waiting ones admitted in
arrival order while a batch slot is free and the KV cache can hold the whole prompt (head-of-line blocking,
as vLLM's FCFS scheduler). A sequence whose prompt is fully processed emits its first token at the end of that
step (TTFT) and one more at the end of each later step. When the next step's KV growth (one token per decoding
sequence) would not fit, the most recently started sequence is preempted and recomputed later (vLLM's
recompute preemption: it goes back to the head of the queue with prompt + generated tokens to prefill).
Step duration: bench/sim/profiles.py.

The per-step cost is independent of the batch size: a decoding sequence's progress is derived from the
engine's step counter (`tick`), and finishing sequences come off a heap ordered by their last tick.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from typing import Protocol

from llmsched.bench.sim.profiles import EngineProfile

WAITING, PREFILLING, DECODING, DONE, FAILED = range(5)


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
        return self.prefill_kv + self.dec_const + self.n_dec * self.tick

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
            if self.kv_used + req.kv_prompt > p.kv_tokens:
                break
            self.waiting.popleft()
            req.state = PREFILLING
            req.prefilled = 0
            self.prefilling.append(req)
            self.prefill_kv += req.kv_prompt
            take = min(req.kv_prompt, budget)
            chunks.append((req, take))
            budget -= take
            prefill_tokens += take
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
    def predict_ttft(self, prompt: int, now: float) -> float:
        """TTFT a new request would see here, from the exact state (perfect knowledge, no future arrivals)."""
        if not self.up:
            return math.inf
        p = self.p
        step = p.step_base + p.step_per_seq * (self.running + 1) + p.step_per_ctx_token * self.kv_used
        ahead = (
            sum(r.kv_prompt for r in self.waiting)
            + sum(r.kv_prompt - r.prefilled for r in self.prefilling)
            + sum(r.kv_prompt for _, _, r in self.inbound)
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
            req.kv_prompt = req.prompt + (req.output - req.remaining)
            req.state = WAITING
            self.waiting.appendleft(req)
            return
        raise AssertionError("KV over capacity with no decoding sequence to preempt")

    def _finish(self, req: Request, now: float) -> None:
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
