"""Engine presets: the continuous-batching parameters of one vLLM server, calibrated from public figures.

Every preset serves Llama-3.1-8B-Instruct in bf16 (16.06 GB of weights; KV cache 2 x 32 layers x 8 KV heads x
128 x 2 bytes = 128 KiB per token) with vLLM V1's defaults for the OpenAI server: `gpu_memory_utilization` 0.9,
chunked prefill, and `max_num_seqs` / `max_num_batched_tokens` = 256 / 2048 on GPUs under 70 GiB or on A100,
1024 / 8192 on larger GPUs (vllm/engine/arg_utils.py, `get_batch_defaults`). docs/routing.md ("Calibration")
derives each number and says which are measured anchors and which are estimates;
`python -m llmsched.bench.sim.calibrate` replays the anchor benchmark on a preset.

The step-time model (one engine iteration, all running sequences advance by one token, plus a prefill chunk):

    step = step_base + step_per_seq x sequences_in_batch + step_per_ctx_token x KV_tokens_in_use
           + prefill_tokens_in_step / prefill_rate

step_base is reading the weights once (memory-bound decode at batch 1) plus launch overhead; step_per_ctx_token
is reading one token's KV; step_per_seq the per-sequence compute and CPU work; prefill_rate the compute-bound
prompt throughput.

A preset with `weights_read` > 0 uses the roofline form instead, where compute and memory traffic overlap:

    step = step_base + step_per_seq x sequences_in_batch
           + max(weights_read + step_per_ctx_token x KV_tokens_in_use, tokens_in_step / prefill_rate)

with tokens_in_step = decoding sequences + prefill tokens, and step_base the launch and communication overhead
alone. A step is memory-bound (flat in the batch) until it carries about weights_read x prefill_rate tokens
(the ridge point), then grows with every token: that is the TTFT knee of a busy server, which the additive form
(prefill always paid on top of the weight read) does not have. docs/routing.md says which presets use which.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class EngineProfile:
    max_seqs: int  # vLLM max_num_seqs: batch slots
    max_batched_tokens: int  # vLLM max_num_batched_tokens: token budget of one step (decode + prefill)
    kv_tokens: int  # KV-cache capacity in tokens
    step_base: float  # s
    step_per_seq: float  # s per sequence in the batch
    step_per_ctx_token: float  # s per KV token in use (attention reads)
    prefill_rate: float  # prompt tokens per second
    description: str = ""
    weights_read: float = 0.0  # s; > 0 selects the roofline step (see above), 0 the additive one
    # s: a request reaches the engine's scheduler this long after the client sent it (client, BIG-IP, the
    # server's HTTP front end, tokenization, hand-over to the engine core), drawn uniformly per request from
    # [path_latency_min, path_latency_max]; part of TTFT. 0 / 0: the request is in the queue the instant it is sent
    path_latency_min: float = 0.0
    path_latency_max: float = 0.0

    @property
    def ridge_tokens(self) -> float:
        """Roofline presets: tokens per step beyond which a step is compute-bound (0 for additive presets)."""
        return self.weights_read * self.prefill_rate

    def __post_init__(self) -> None:
        if not 0.0 <= self.path_latency_min <= self.path_latency_max:
            raise ValueError(
                f"path_latency_min ({self.path_latency_min}) and path_latency_max ({self.path_latency_max}) "
                "must satisfy 0 <= min <= max"
            )

    def with_overrides(self, overrides: dict) -> EngineProfile:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown engine parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return replace(self, **overrides)


# The published set-ups' clients reach vLLM through BIG-IP on a LAN: a new connection per request (vLLM's
# benchmark client), the proxy, vLLM's HTTP front end and tokenizer, then the hand-over to the engine core.
# The description gives no figure. vLLM's own benchmark client, against a local server, measures its TTFT
# 8-12 ms above the server's `vllm:time_to_first_token_seconds` (docs/routing.md 2.1 cites it): a mean of
# ~10 ms before BIG-IP's two extra hops, hence 5-15 ms (mean 10). Without it a closed-loop client's next
# request reaches the scheduler at the very instant the step it could join starts, and always misses it: a
# step-phase artefact that favours any policy sending it elsewhere (docs/routing.md 5.3).
PUBLISHED_PATH = (0.005, 0.015)

PRESETS: dict[str, EngineProfile] = {
    # NVIDIA A10 24 GB (600 GB/s, 125 TFLOPS bf16 dense). 0.9 x 22.5 GiB - 14.96 GiB weights - ~1.2 GiB
    # activations/CUDA graphs = ~4.1 GiB of KV = ~33k tokens: KV-bound at ~70 ShareGPT sequences.
    "a10-llama3-8b": EngineProfile(
        max_seqs=256,
        max_batched_tokens=2048,
        kv_tokens=32_000,
        step_base=0.032,
        step_per_seq=0.00012,
        step_per_ctx_token=0.26e-6,
        prefill_rate=3_800.0,
        description="1x A10 24GB, Llama-3.1-8B bf16, vLLM V1 defaults",
    ),
    # Four A10 with tensor parallelism over PCIe (no NVLink), e.g. an AWS g5.12xlarge: a quarter of the weights
    # per GPU, plus 64 all-reduces per step; KV 4 x ~15.3 GiB = ~500k tokens: slot-bound (256).
    "4xa10-tp4-llama3-8b": EngineProfile(
        max_seqs=256,
        max_batched_tokens=2048,
        kv_tokens=500_000,
        step_base=0.012,
        step_per_seq=0.00005,
        step_per_ctx_token=0.065e-6,
        prefill_rate=11_000.0,
        description="4x A10 24GB tensor-parallel, Llama-3.1-8B bf16, vLLM V1 defaults",
    ),
    # NVIDIA A100 80GB SXM (2.04 TB/s, 312 TFLOPS bf16 dense); A100 keeps the small defaults (PR #17885).
    # KV 0.9 x 79.2 GiB - 14.96 GiB - ~2 GiB = ~54 GiB = ~440k tokens: slot-bound (256).
    "a100-llama3-8b": EngineProfile(
        max_seqs=256,
        max_batched_tokens=2048,
        kv_tokens=440_000,
        step_base=0.011,
        step_per_seq=0.0001,
        step_per_ctx_token=0.076e-6,
        prefill_rate=9_700.0,
        description="1x A100 80GB SXM, Llama-3.1-8B bf16, vLLM V1 defaults",
    ),
    # NVIDIA H100 80GB SXM (3.35 TB/s, 989 TFLOPS bf16 dense); KV ~52 GiB = ~430k tokens. step_per_seq is fitted
    # so that 1000 ShareGPT prompts sent at once reproduce the published ~32 req/s / ~38 ms ITL at 256 slots.
    "h100-llama3-8b": EngineProfile(
        max_seqs=1024,
        max_batched_tokens=8192,
        kv_tokens=430_000,
        step_base=0.007,
        step_per_seq=0.00006,
        step_per_ctx_token=0.046e-6,
        prefill_rate=30_000.0,
        description="1x H100 80GB SXM, Llama-3.1-8B bf16, vLLM V1 defaults",
    ),
    # The original's published GPU tests (docs/routing.md "The published set-ups" derives every number). Its
    # hardware is not named; the description fits 24 GB GPUs serving a ~4B model (its "4-byte model", read as
    # 4B; Qwen3-4B figures: 8.04 GB of bf16 weights, 8.04 GFLOP and 144 KiB of KV per token), with A10
    # datasheet figures (600 GB/s at 85 %, 125 TFLOPS bf16 at 50 %), in the roofline form (weights_read).
    # 1-GPU: weights in 15.8 ms, 7,770 prompt tok/s, KV reads 0.29 us/token; KV 70k tokens, i.e. ~160 ShareGPT
    # sequences ("waiting requests increase after 160"; vLLM's memory formula gives 65-81k).
    "published-1gpu": EngineProfile(
        max_seqs=256,
        max_batched_tokens=2048,
        kv_tokens=70_000,
        step_base=0.0015,
        step_per_seq=0.00012,
        step_per_ctx_token=0.29e-6,
        prefill_rate=7_770.0,
        weights_read=0.0158,
        description="the original's 1-GPU server from its description: 24 GB GPU, ~4B model",
        path_latency_min=PUBLISHED_PATH[0],
        path_latency_max=PUBLISHED_PATH[1],
    ),
    # 4-GPU, tensor parallel over PCIe: a quarter of the weights per GPU (3.95 ms), launch + 72 all-reduce
    # latencies per step (3.3 ms); per token 32 us of compute (4 GPUs) + 55 us of all-reduce (72 x 5 KiB x 1.5
    # at 10 GB/s) = 11,500 tok/s; 256 slots ("waiting requests increase after 250"); KV 470k tokens (its
    # cache "stayed around 20-25 %": 250 sequences of ~430 tokens).
    "published-4gpu-tp4": EngineProfile(
        max_seqs=256,
        max_batched_tokens=2048,
        kv_tokens=470_000,
        step_base=0.0033,
        step_per_seq=0.00005,
        step_per_ctx_token=0.072e-6,
        prefill_rate=11_500.0,
        weights_read=0.00395,
        description="the original's 4-GPU tensor-parallel server from its description: 4 x 24 GB GPUs, ~4B model",
        path_latency_min=PUBLISHED_PATH[0],
        path_latency_max=PUBLISHED_PATH[1],
    ),
}

# The homogeneous test's single node as its own description states it: "single-node knee ~30-40" concurrent
# (TTFT rises steeply past it). published-1gpu has no such knee (its TTFT grows smoothly, no queue below
# ~160). In vLLM the only sharp TTFT knee of a closed loop is admission: past it new requests wait
# (num_requests_waiting > 0). The same server with a KV cache of 19k tokens has its knee at 35 clients
# (calibrate.knee); which memory or model gives that is not described, so every other number stays.
PRESETS["published-1gpu-knee"] = replace(
    PRESETS["published-1gpu"],
    kv_tokens=19_000,
    description="the original's homogeneous single node: published-1gpu with its TTFT knee at ~35 clients",
)


def profile(name: str, overrides: dict | None = None) -> EngineProfile:
    """A preset by name, with some of its parameters overridden."""
    try:
        base = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown engine profile {name!r}; known: {', '.join(sorted(PRESETS))}") from None
    return base.with_overrides(overrides) if overrides else base
