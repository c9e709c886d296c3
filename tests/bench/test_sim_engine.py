"""The engine model: a request's timings on an idle engine follow the step formula; queueing and preemption."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from llmsched.bench.sim.engine import Engine, Request
from llmsched.bench.sim.profiles import PRESETS, EngineProfile

PROFILE = EngineProfile(
    max_seqs=8,
    max_batched_tokens=512,
    kv_tokens=10_000,
    step_base=0.010,
    step_per_seq=0.001,
    step_per_ctx_token=1e-6,
    prefill_rate=10_000.0,
)


class Listener:
    def __init__(self) -> None:
        self.done: list[Request] = []
        self.lost: list[Request] = []

    def first_token(self, req: Request, now: float) -> None:
        pass

    def finished(self, req: Request, now: float) -> None:
        self.done.append(req)

    def failed(self, req: Request, now: float) -> None:
        self.lost.append(req)


def drive(engine: Engine, until: float = 1e4, arrivals: list[tuple[float, Request]] | None = None) -> float:
    """Step the engine until idle, submitting (time, request) arrivals when their time comes."""
    pending = sorted(arrivals or [], key=lambda a: a[0])
    now = 0.0
    while now < until:
        while pending and pending[0][0] <= now:
            engine.submit(pending.pop(0)[1], now)
        step = engine.start_step(now)
        if step is None:
            if not pending:
                return now
            now = pending[0][0]
            continue
        now += step
        engine.end_step(now)
    return now


def test_an_idle_request_gets_its_first_token_after_one_prefill_step_of_the_formula() -> None:
    listener = Listener()
    engine = Engine(0, "e", PROFILE, listener)
    prompt, output = 300, 5
    engine.submit(Request(1, prompt, output, 0.0), 0.0)
    drive(engine)
    req = listener.done[0]
    p = PROFILE
    first = p.step_base + p.step_per_seq * 1 + p.step_per_ctx_token * prompt + prompt / p.prefill_rate
    assert req.first_token == pytest.approx(first)
    # then one token per decode step, each reading the prompt plus the tokens generated so far
    decode = [p.step_base + p.step_per_seq + p.step_per_ctx_token * (prompt + k) for k in range(output - 1)]
    assert req.finished == pytest.approx(first + sum(decode))
    assert req.tpot == pytest.approx(sum(decode) / (output - 1))


def test_a_prompt_longer_than_the_token_budget_is_prefilled_in_chunks() -> None:
    listener = Listener()
    engine = Engine(0, "e", PROFILE, listener)
    engine.submit(Request(1, 1200, 2, 0.0), 0.0)
    drive(engine)
    assert engine.steps == math.ceil(1200 / PROFILE.max_batched_tokens) + 1
    assert listener.done[0].first_token > 1200 / PROFILE.prefill_rate


def test_requests_wait_when_every_batch_slot_is_taken() -> None:
    listener = Listener()
    engine = Engine(0, "e", PROFILE.with_overrides({"max_seqs": 2}), listener)
    for i in range(3):
        engine.submit(Request(i, 10, 50, 0.0), 0.0)
    engine.start_step(0.0)
    assert engine.running == 2 and len(engine.waiting) == 1
    drive(engine)
    first, second, third = sorted(listener.done, key=lambda r: r.rid)
    assert third.first_token >= min(first.finished, second.finished)


def test_requests_wait_when_the_kv_cache_cannot_hold_their_prompt() -> None:
    listener = Listener()
    engine = Engine(0, "e", PROFILE.with_overrides({"kv_tokens": 1000}), listener)
    engine.submit(Request(1, 600, 20, 0.0), 0.0)
    engine.submit(Request(2, 600, 20, 0.0), 0.0)
    engine.start_step(0.0)
    assert engine.running == 1 and len(engine.waiting) == 1
    waiting, running, kv = engine.sample()
    assert (waiting, running) == (1.0, 1.0) and kv == pytest.approx(0.6)
    drive(engine)
    a, b = sorted(listener.done, key=lambda r: r.rid)
    assert b.first_token >= a.finished


def test_kv_growth_preempts_the_newest_sequence_which_still_completes() -> None:
    listener = Listener()
    engine = Engine(0, "e", PROFILE.with_overrides({"kv_tokens": 400}), listener)
    engine.submit(Request(1, 150, 150, 0.0), 0.0)
    engine.submit(Request(2, 150, 150, 0.0), 0.0)
    drive(engine)
    assert sorted(r.rid for r in listener.done) == [1, 2]
    assert all(r.remaining == 0 for r in listener.done)
    assert engine.kv_used == 0 and engine.running == 0


def test_a_failed_engine_loses_its_requests_and_refuses_new_ones_until_it_recovers() -> None:
    listener = Listener()
    engine = Engine(0, "e", PROFILE, listener)
    engine.submit(Request(1, 100, 100, 0.0), 0.0)
    engine.start_step(0.0)
    engine.fail(0.005)
    assert [r.rid for r in listener.lost] == [1]
    assert engine.submit(Request(2, 100, 10, 1.0), 1.0) is False
    engine.recover()
    assert engine.submit(Request(3, 100, 10, 2.0), 2.0) is True
    drive(engine)
    assert [r.rid for r in listener.done] == [3]


def test_the_oracle_prediction_grows_with_the_work_queued_ahead() -> None:
    engine = Engine(0, "e", PROFILE.with_overrides({"max_seqs": 1}), Listener())
    idle = engine.predict_ttft(200, 0.0)
    engine.submit(Request(1, 200, 100, 0.0), 0.0)
    engine.start_step(0.0)
    assert engine.predict_ttft(200, 0.0) > idle
    engine.fail(0.0)
    assert engine.predict_ttft(200, 0.0) == math.inf


def test_the_waiting_gauge_counts_only_requests_the_last_admission_turned_away_as_vllm_v1_reports_it() -> None:
    engine = Engine(0, "e", PROFILE, Listener())
    first = Request(1, 100, 50, 0.0)
    engine.submit(first, 0.0)
    assert engine.start_step(0.0) is not None
    # arrives during the step: in vLLM V1 it sits in the engine core's input queue, not in the scheduler's
    engine.submit(Request(2, 20, 50, 0.001), 0.001)
    assert engine.sample()[0] == 0.0
    # a full engine: eight slots taken, so the next admission leaves two requests waiting
    for rid in range(3, 11):
        engine.submit(Request(rid, 20, 50, 0.002), 0.002)
    engine.end_step(0.02)
    engine.start_step(0.02)
    assert engine.running == PROFILE.max_seqs
    assert engine.sample()[0] == 2.0


def test_a_request_reaches_the_scheduler_after_its_path_latency_which_counts_in_its_ttft() -> None:
    listener = Listener()
    path = replace(PROFILE, path_latency_min=0.004, path_latency_max=0.004)
    engine = Engine(0, "e", path, listener)
    prompt, output = 300, 5
    engine.submit(Request(1, prompt, output, 0.0), 0.0)
    assert engine.sample()[0] == 0.0 and engine.running == 0  # on its way in: neither waiting nor running
    drive(engine)
    p = PROFILE
    first = p.step_base + p.step_per_seq * 1 + p.step_per_ctx_token * prompt + prompt / p.prefill_rate
    assert listener.done[0].first_token == pytest.approx(0.004 + first)


def test_a_path_latency_range_must_be_ordered_and_not_negative() -> None:
    with pytest.raises(ValueError, match="path_latency_min"):
        replace(PROFILE, path_latency_min=0.01, path_latency_max=0.005)
    with pytest.raises(ValueError, match="path_latency_min"):
        replace(PROFILE, path_latency_min=-0.001)


def test_the_published_presets_path_latency_centres_on_the_measured_client_to_server_overhead() -> None:
    # vLLM's benchmark client measures its TTFT 8-12 ms above the server's own (docs/routing.md 2.1): the
    # published presets' path from a finished request to the next one in the engine's queue is that, on average
    for name in ("published-1gpu", "published-4gpu-tp4", "published-1gpu-knee"):
        p = PRESETS[name]
        assert 0.008 <= (p.path_latency_min + p.path_latency_max) / 2 <= 0.012, name
        assert p.path_latency_max - p.path_latency_min > 0  # spread: requests do not all land at one step phase
