"""A small, deterministic continuous-batching model of one inference engine (one vLLM DP rank / SGLang scheduler).

Each step admits waiting sequences while there is a free batch slot (`max_running`) and KV room for the
prompt, sleeps for the step time (prefill of the newly admitted prompts + one decode step whose cost grows
with the batch size), then gives every running sequence one token. KV is counted in tokens: a sequence holds
prompt + generated tokens until it finishes, except that the full prompt blocks running sequences share are
counted once. When a decode step would overflow the KV pool, the newest running sequence is preempted back to
the head of the queue (vLLM's recompute preemption). Tokens per prompt are len(text) / 4, so tests can reason
about the numbers. The prefix cache (`engine_prefix`) keeps finished prompts' blocks in the free part of the
pool until the room is needed; a prompt's cached leading blocks are not prefilled again.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field

from llmsched.emulators.engine_prefix import PrefixCache
from llmsched.emulators.expo import Histogram

SPEED_PRESETS = {"fast": 1.0, "slow": 0.1}
# Baseline ("fast", speed 1.0) costs; a speed factor s divides every duration by s.
PREFILL_TOKENS_PER_S = 20_000.0
DECODE_BASE_S = 0.004
DECODE_PER_SEQ_S = 0.0005

TTFT_BUCKETS = [
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
]
ITL_BUCKETS = [
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
]
REQUEST_LATENCY_BUCKETS = [
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
    960.0,
    1920.0,
    7680.0,
]
FINISH_REASONS = ("stop", "length", "abort", "error")


def parse_speed(value: str | float) -> float:
    """`fast` -> 1.0, `slow` -> 0.1, or a positive float (bigger is faster)."""
    if isinstance(value, str) and value in SPEED_PRESETS:
        return SPEED_PRESETS[value]
    speed = float(value)
    if speed <= 0:
        raise ValueError("speed must be > 0")
    return speed


def count_tokens(text: str) -> int:
    return max(1, len(text) // 4)


@dataclass
class Sequence:
    prompt_tokens: int
    max_tokens: int
    block_hashes: tuple[bytes, ...] = ()  # the prompt's full blocks, chained (engine_prefix.block_hashes)
    arrival: float = field(default_factory=time.monotonic)
    generated: int = 0
    kv_tokens: int = 0
    admitted_at: float | None = None
    first_token_at: float | None = None
    last_token_at: float | None = None
    finish_reason: str | None = None
    preempted: bool = False
    events: asyncio.Queue[int | None] = field(default_factory=asyncio.Queue)  # token index, None = finished


class EngineCore:
    """One engine's scheduler, KV pool and metric accumulators; `run()` is its step loop."""

    def __init__(self, index: int, max_running: int, kv_capacity: int, speed: float, block_size: int = 16) -> None:
        self.index = index
        self.max_running = max_running
        self.kv_capacity = kv_capacity
        self.speed = speed
        self.block_size = block_size
        self.waiting: collections.deque[Sequence] = collections.deque()
        self.running: list[Sequence] = []
        self.kv_used = 0
        self.forced: dict[str, float] = {}  # admin overrides: waiting / running / kv
        self.created = time.time()
        self.counters: dict[str, float] = collections.defaultdict(float)
        self.finished: dict[str, float] = {r: 0.0 for r in FINISH_REASONS}
        self.ttft = Histogram(TTFT_BUCKETS)
        self.itl = Histogram(ITL_BUCKETS)
        self.e2e = Histogram(REQUEST_LATENCY_BUCKETS)
        self.queue_time = Histogram(REQUEST_LATENCY_BUCKETS)
        self.last_prefill_hit_rate = 0.0
        self.prefix = PrefixCache(block_size)
        self._recent: collections.deque[tuple[float, int]] = collections.deque()  # (time, tokens) per step
        self._wake = asyncio.Event()

    # -- what /metrics shows ---------------------------------------------------------------------------------
    @property
    def num_waiting(self) -> float:
        return self.forced.get("waiting", float(len(self.waiting)))

    @property
    def num_running(self) -> float:
        return self.forced.get("running", float(len(self.running)))

    @property
    def kv_usage(self) -> float:
        return self.forced.get("kv", self.kv_used / self.kv_capacity if self.kv_capacity else 0.0)

    @property
    def used_tokens(self) -> float:
        return self.kv_usage * self.kv_capacity

    def gen_throughput(self, window: float = 5.0) -> float:
        now = time.monotonic()
        while self._recent and self._recent[0][0] < now - window:
            self._recent.popleft()
        return sum(n for _, n in self._recent) / window

    def load_score(self) -> float:
        # vLLM's internal DP balancer: waiting x 4 + running, pick the minimum.
        return len(self.waiting) * 4 + len(self.running)

    # -- request lifecycle -----------------------------------------------------------------------------------
    def submit(self, seq: Sequence) -> None:
        self.waiting.append(seq)
        self._wake.set()

    def abort(self, seq: Sequence) -> None:
        """Drop a sequence whose client went away, freeing its KV."""
        if seq.finish_reason is not None:
            return
        if seq in self.waiting:
            self.waiting.remove(seq)
        if seq in self.running:
            self.running.remove(seq)
            self._release(seq)
        seq.finish_reason = "abort"
        self.finished["abort"] += 1

    def _private_tokens(self, seq: Sequence) -> int:
        """KV tokens only this sequence holds: its prompt's partial last block and what it generated."""
        return seq.prompt_tokens - len(seq.block_hashes) * self.block_size + seq.generated

    def _release(self, seq: Sequence) -> None:
        """Give back a running sequence's KV; its prompt blocks stay cached (free) until the room is needed."""
        freed = self.prefix.unpin(seq.block_hashes)
        self.kv_used -= freed * self.block_size + self._private_tokens(seq)
        seq.kv_tokens = 0

    def _admit(self, now: float) -> int:
        """Move waiting sequences into the batch; returns the prompt tokens that must be prefilled."""
        prefill = queried = hits = 0
        computing: set[bytes] = set()  # blocks first computed in this step: not cached for the others yet
        while self.waiting and len(self.running) < self.max_running:
            seq = self.waiting[0]
            # Blocks another running sequence holds cost no room; a preempted sequence recomputes what it had.
            need = self.prefix.new_blocks(seq.block_hashes) * self.block_size + self._private_tokens(seq)
            if self.kv_used + need + 1 > self.kv_capacity:
                break
            self.waiting.popleft()
            cached = self.prefix.cached_tokens(seq.block_hashes, seq.prompt_tokens, computing)
            if seq.admitted_at is None:
                seq.admitted_at = now
                self.queue_time.observe(now - seq.arrival)
                queried += seq.prompt_tokens
                hits += cached
                self.counters["prompt_tokens"] += seq.prompt_tokens
            prefill += seq.prompt_tokens + seq.generated - cached
            computing.update(h for h in seq.block_hashes if h not in self.prefix.pinned and h not in self.prefix.free)
            self.prefix.pin(seq.block_hashes)
            seq.kv_tokens = need
            self.kv_used += need
            self.running.append(seq)
        self.prefix.fit(self.kv_capacity - self.kv_used)
        if queried:
            self.counters["prefix_queries"] += queried
            self.counters["prefix_hits"] += hits
            self.last_prefill_hit_rate = hits / queried
        else:
            self.last_prefill_hit_rate = 0.0  # SGLang zeroes the gauge on decode-only batches
        return prefill

    def _preempt_newest(self) -> None:
        victim = self.running.pop()
        self._release(victim)
        victim.preempted = True
        self.waiting.appendleft(victim)
        self.counters["preemptions"] += 1

    def _decode(self, now: float) -> int:
        produced = 0
        for seq in list(self.running):
            if seq not in self.running:  # preempted earlier in this step
                continue
            while self.kv_used + 1 > self.kv_capacity and len(self.running) > 1:
                self._preempt_newest()
            if seq not in self.running:
                continue
            self.kv_used += 1
            seq.kv_tokens += 1
            seq.generated += 1
            produced += 1
            if seq.first_token_at is None:
                seq.first_token_at = now
                self.ttft.observe(now - seq.arrival)
            elif seq.last_token_at is not None:
                self.itl.observe(now - seq.last_token_at)
            seq.last_token_at = now
            seq.events.put_nowait(seq.generated - 1)
            if seq.generated >= seq.max_tokens:
                self.running.remove(seq)
                self._release(seq)
                seq.finish_reason = "length"
                self.finished["length"] += 1
                self.e2e.observe(now - seq.arrival)
                seq.events.put_nowait(None)
        self.counters["generation_tokens"] += produced
        self.prefix.fit(self.kv_capacity - self.kv_used)
        return produced

    def step_time(self, prefill_tokens: int) -> float:
        decode = DECODE_BASE_S + DECODE_PER_SEQ_S * len(self.running)
        return (prefill_tokens / PREFILL_TOKENS_PER_S + decode) / self.speed

    async def run(self) -> None:
        """The engine loop: sleep while idle, otherwise admit, wait one step, decode."""
        while True:
            if not self.running and not self.waiting:
                self._wake.clear()
                await self._wake.wait()
                continue
            prefill = self._admit(time.monotonic())
            if not self.running:  # nothing fits yet (cannot happen for valid requests)
                await asyncio.sleep(0.01)
                continue
            await asyncio.sleep(self.step_time(prefill))
            now = time.monotonic()
            self._recent.append((now, self._decode(now)))
