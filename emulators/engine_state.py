"""Configuration (`EngineSpec`) and the single mutable state object (`EngineState`) of one engine emulator.

One emulator process can stand for a vLLM server with DP=N engines (N `EngineCore`s behind one `/metrics`) or
an SGLang server (N `EngineCore`s = DP-attention ranks). All simulated load and every admin override lives in
the `EngineState`, which the aiohttp app carries; nothing is global.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field

from llmsched.emulators.engine_prefix import block_hashes
from llmsched.emulators.engine_sim import EngineCore, Sequence, parse_speed

ENGINES = ("vllm", "sglang")
KV_NAMES = ("old", "both", "new")
SGLANG_PREFIXES = {"colon": "sglang:", "underscore": "sglang_"}
METRICS_MODES = ("ok", "error", "hang", "garbage", "partial", "truncated", "quirky")


@dataclass
class EngineSpec:
    engine: str = "vllm"  # vllm | sglang
    model: str = "meta-llama/Llama-3.1-8B-Instruct"
    kv_name: str = "new"  # vLLM KV gauge: old = gpu_cache_usage_perc (<0.9), both (0.9.2-0.10.x),
    # new = kv_cache_usage_perc (>=0.12)
    dp: int = 1  # vLLM data-parallel engines / SGLang DP-attention ranks
    sglang_prefix: str = "colon"  # colon -> "sglang:", underscore -> "sglang_"
    tp: int = 1  # SGLang TP size (only visible with all_schedulers)
    all_schedulers: bool = False  # SGLang --enable-metrics-for-all-schedulers: one series per TP rank
    multiprocess: bool = False  # vLLM --api-server-count>1 exposition (no _created, _sum first)
    max_running: int = 8  # batch slots per engine
    kv_capacity: int = 8192  # KV pool per engine, in tokens
    max_model_len: int | None = None  # None -> kv_capacity; longer requests get 400
    speed: float = 1.0  # 1.0 "fast", 0.1 "slow"; bigger is faster
    api_key: str | None = None  # require "Authorization: Bearer <key>" on /metrics and /v1
    basic_auth: tuple[str, str] | None = None  # or accept Basic user:password
    block_size: int = 16

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}")
        if self.kv_name not in KV_NAMES:
            raise ValueError(f"kv_name must be one of {KV_NAMES}")
        if self.sglang_prefix not in SGLANG_PREFIXES:
            raise ValueError(f"sglang_prefix must be one of {tuple(SGLANG_PREFIXES)}")
        if self.dp < 1 or self.tp < 1 or self.max_running < 1 or self.kv_capacity < 2:
            raise ValueError("dp, tp, max_running must be >= 1 and kv_capacity >= 2")
        self.speed = parse_speed(self.speed)

    @property
    def context_limit(self) -> int:
        return min(self.max_model_len or self.kv_capacity, self.kv_capacity)


@dataclass
class EngineState:
    spec: EngineSpec
    cores: list[EngineCore] = field(default_factory=list)
    metrics_mode: str = "ok"
    error_status: int = 500
    started: float = field(default_factory=time.time)
    release: asyncio.Event = field(default_factory=asyncio.Event)  # set on shutdown: ends "hang" scrapes

    def __post_init__(self) -> None:
        if not self.cores:
            s = self.spec
            self.cores = [EngineCore(i, s.max_running, s.kv_capacity, s.speed, s.block_size) for i in range(s.dp)]

    def pick_core(self) -> EngineCore:
        return min(self.cores, key=lambda c: (c.load_score(), c.index))

    def submit(self, prompt: str | Seq[int], prompt_tokens: int, max_tokens: int) -> tuple[EngineCore, Sequence]:
        """Queue a request on the least loaded engine; `prompt` (text, or token ids) keys its prefix cache."""
        if prompt_tokens + max_tokens > self.spec.context_limit:
            raise ValueError(
                f"This model's maximum context length is {self.spec.context_limit} tokens. However, you requested "
                f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the "
                f"completion). Please reduce the length of the messages or completion."
            )
        core = self.pick_core()
        seq = Sequence(
            prompt_tokens=prompt_tokens,
            max_tokens=max_tokens,
            block_hashes=block_hashes(prompt, self.spec.block_size),
        )
        core.submit(seq)
        return core, seq
