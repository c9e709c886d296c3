"""Closed-loop clients, per-scenario mode weights, the roofline step and concurrency sweeps."""

from __future__ import annotations

import json
import statistics
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from llmsched.bench.sim import compare, runner, scenario
from llmsched.bench.sim.engine import Engine, Request
from llmsched.bench.sim.profiles import EngineProfile
from llmsched.bench.sim.sweep import PublishedRow
from llmsched.cli.main import main

CLOSED = textwrap.dedent("""
    description: two engines, closed-loop clients
    duration: 120
    warmup: 20
    engines:
      - {name: e1, profile: a100-llama3-8b}
      - {name: e2, profile: published-1gpu}
    arrivals: {process: closed, concurrency: 12}
    pipeline: {scrape_interval: 1}
    weights: {s1_enhanced: {w_a: 0.1, w_b: 0.9}}
    policies: [least_conn, s1_enhanced_no_herd, default]
""")


def closed(**changes: object) -> scenario.Scenario:
    raw = yaml.safe_load(CLOSED)
    raw.update(changes)
    return scenario.parse(raw, "closed.yaml", default_name="closed")


def by_client(sim: runner.Simulation) -> dict[int, list[Request]]:
    clients: dict[int, list[Request]] = defaultdict(list)
    for req in sim.main:
        clients[req.client].append(req)
    return clients


def test_each_closed_loop_client_sends_its_next_request_the_moment_the_previous_one_completes() -> None:
    sim = runner.Simulation(runner.prepare(closed(), 1), "least_conn")
    sim.run()
    clients = by_client(sim)
    assert sorted(clients) == list(range(12))
    for reqs in clients.values():
        assert reqs[0].arrival == 0.0
        for prev, nxt in zip(reqs, reqs[1:]):
            assert nxt.arrival == prev.finished  # one request in flight per client, no think time
        assert reqs[-1].arrival < 120 and reqs[-1].finished is not None and reqs[-1].finished >= 120


def test_closed_loop_throughput_equals_concurrency_over_latency() -> None:
    sc = closed()
    sim = runner.Simulation(runner.prepare(sc, 2), "default")
    result = sim.run()
    done = [r for r in sim.main if r.finished is not None and sc.warmup <= r.arrival < sc.duration]
    latency = statistics.fmean(r.finished - r.arrival for r in done)
    assert result.throughput_rps == pytest.approx(12 / latency, rel=0.03)  # Little's law, N = X x latency


def test_client_k_th_request_has_the_same_lengths_under_every_policy() -> None:
    prepared = runner.prepare(closed(), 3)
    streams = []
    for policy in ("least_conn", "default"):
        sim = runner.Simulation(prepared, policy)
        sim.run()
        streams.append({c: [(r.prompt, r.output) for r in reqs[:20]] for c, reqs in by_client(sim).items()})
    assert streams[0] == streams[1]


def test_the_concurrency_override_turns_any_scenario_into_closed_loop_clients() -> None:
    sc = scenario.load("bursty").with_concurrency(7)
    assert sc.arrivals.closed and sc.arrivals.concurrency == 7 and sc.load == 0
    assert runner.prepare(sc, 1).requests == ()
    with pytest.raises(scenario.ScenarioError, match="concurrency must be >= 1"):
        sc.with_concurrency(0)


def test_scenario_weights_replace_the_suggested_weights_of_that_mode_only() -> None:
    sc = closed()
    _, doc = runner.make_policy("s1_enhanced_no_herd", runner.prepare(sc, 1))
    assert doc is not None and doc["mode"] == "s1_enhanced"
    assert doc["weights"]["w_a"] == 0.1 and doc["weights"]["w_b"] == 0.9  # suggested: 0.2 / 0.8
    _, doc = runner.make_policy("s2_enhanced", runner.prepare(sc, 1))
    assert doc is not None and (doc["weights"]["w_a"], doc["weights"]["w_b"], doc["weights"]["w_g"]) == (0.4, 0.4, 0.2)
    without = closed(weights=None)
    _, doc = runner.make_policy("s1_enhanced_no_herd", runner.prepare(without, 1))
    assert doc is not None and (doc["weights"]["w_a"], doc["weights"]["w_b"]) == (0.2, 0.8)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"arrivals": {"process": "closed", "concurrency": 5, "load": 0.5}}, "arrivals.load: closed arrivals"),
        ({"arrivals": {"process": "closed"}}, "arrivals.concurrency: required"),
        ({"arrivals": {"process": "poisson", "load": 0.5, "concurrency": 5}}, "arrivals.concurrency: only closed"),
        ({"weights": {"saturation": {"w_a": 1}}}, "weights.saturation: not an original mode"),
        ({"weights": {"s1": {"w_z": 1}}}, r"weights.s1.w_z: unknown key"),
        ({"weights": {"s1": {"w_a": "high"}}}, "weights.s1.w_a: must be a number"),
        ({"engines": [{"name": "e", "profile": "a10-llama3-8b", "params": {"kv_tokens": "1e5"}}]}, "must be a number"),
        (
            {"sweep": {"concurrency": [10], "original": "s1", "published": [{"concurrency": 20, "mean": 1}]}},
            r"sweep.published\[0\].concurrency: 20 is not one of sweep.concurrency",
        ),
        ({"sweep": {"concurrency": [10], "original": "nope"}}, "sweep.original: unknown policy"),
    ],
)
def test_bad_closed_loop_weights_and_sweep_keys_are_errors_naming_the_key(change: dict, message: str) -> None:
    with pytest.raises(scenario.ScenarioError, match=message):
        closed(**change)


def test_a_roofline_step_is_memory_bound_until_its_tokens_pass_the_ridge_then_compute_bound() -> None:
    prof = EngineProfile(
        max_seqs=64,
        max_batched_tokens=2048,
        kv_tokens=100_000,
        step_base=0.002,
        step_per_seq=0.0,
        step_per_ctx_token=0.0,
        prefill_rate=10_000.0,
        weights_read=0.010,
    )
    assert prof.ridge_tokens == 100

    class Sink:
        def first_token(self, req: Request, now: float) -> None: ...
        def finished(self, req: Request, now: float) -> None: ...
        def failed(self, req: Request, now: float) -> None: ...

    small, big = Engine(0, "a", prof, Sink()), Engine(1, "b", prof, Sink())
    small.submit(Request(1, 50, 10, 0.0), 0.0)  # 50 prompt tokens: under the ridge, the weight read dominates
    big.submit(Request(2, 500, 10, 0.0), 0.0)  # 500 tokens: compute-bound
    assert small.start_step(0.0) == pytest.approx(0.002 + 0.010)
    assert big.start_step(0.0) == pytest.approx(0.002 + 500 / 10_000)


def test_a_published_row_matches_within_its_tolerance_and_on_its_side_of_zero_when_clear() -> None:
    row = PublishedRow(10, mean=-7.0, median=0.0, p99=0.0, tolerance=10.0)
    assert row.mean_matches(-1.0) and row.mean_matches(-16.9)
    assert not row.mean_matches(1.0)  # within 10 points but the published -7 % is a clear win
    assert not row.mean_matches(-17.5)
    flat = PublishedRow(40, mean=0.24, median=0.0, p99=0.0, tolerance=10.0)
    assert flat.mean_matches(-5.0) and flat.mean_matches(8.0) and not flat.mean_matches(11.0)


def test_change_is_relative_to_the_baseline_and_negative_when_faster() -> None:
    assert compare.change(90.0, 100.0) == pytest.approx(-10.0)
    assert compare.change(125.0, 100.0) == pytest.approx(25.0)


SWEEP = CLOSED + textwrap.dedent("""
    sweep:
      concurrency: [4, 8]
      seeds: [1, 2]
      original: s1_enhanced_no_herd
      source: made up for the test
      published:
        - {concurrency: 4, mean: -10.0, median: -5.0, p99: -3.0}
""")


def test_sweep_prints_the_published_row_beside_the_simulated_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sw.yaml"
    path.write_text(SWEEP.replace("duration: 120", "duration: 40").replace("warmup: 20", "warmup: 5"))
    assert main(["bench", "routing", "--sweep", str(path)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| 4 ") or line.startswith("| 8 ")]
    assert len(rows) == 2
    assert rows[0].split(" | ")[1] == "-10.0 / -5.0 / -3.0" and rows[1].split(" | ")[1] == "-"
    assert "seeds 1, 2" in out and "s1_enhanced_no_herd" in out
    assert main(["bench", "routing", "--sweep", str(path), "--seed", "3", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["concurrency"] for p in doc["points"]] == [4, 8] and doc["points"][0]["seeds"] == [3]
    sim = doc["points"][0]["simulated"]
    assert set(sim) == {"s1_enhanced_no_herd", "default"} and doc["points"][0]["published"]["ttft_mean"] == -10.0


def test_sweep_needs_a_scenario_with_a_sweep_and_refuses_concurrency(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sw.yaml"
    path.write_text(SWEEP)
    assert main(["bench", "routing", "--sweep", "bursty"]) == 2
    assert "needs a scenario with a `sweep` section" in capsys.readouterr().err
    assert main(["bench", "routing", "--sweep", str(path), "--concurrency", "3"]) == 2
    assert "--sweep sets its own" in capsys.readouterr().err


def test_concurrency_flag_runs_closed_loop_clients_and_the_markdown_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CLOSED.replace("duration: 120", "duration: 30").replace("warmup: 20", "warmup: 5"))
    assert main(["bench", "routing", "--scenario", str(path), "--concurrency", "3", "--markdown"]) == 0
    captured = capsys.readouterr()
    assert "--concurrency 3`" in captured.out and "3 closed-loop clients" in captured.err


class _Forwards(runner.Simulation):
    """Records when BIG-IP hands each main request to its engine."""

    def __init__(self, prepared: runner.Prepared, policy: str) -> None:
        super().__init__(prepared, policy)
        self.forwarded: dict[int, float] = {}

    def _forward(self, now: float, req: Request, choice: int) -> None:
        self.forwarded[req.rid] = now
        super()._forward(now, req, choice)


def test_a_scheduled_request_reaches_its_engine_after_the_sideband_round_trip_and_least_conn_pays_none() -> None:
    sc = closed(pipeline={"scrape_interval": 1, "decision_latency": 0.05})
    for policy, delay in (("default", 0.05), ("s1_enhanced_no_herd", 0.05), ("least_conn", 0.0)):
        sim = _Forwards(runner.prepare(sc, 1), policy)
        sim.run()
        sent = [r for r in sim.main if r.rid in sim.forwarded]
        assert len(sent) > 100
        assert all(sim.forwarded[r.rid] - r.arrival == pytest.approx(delay) for r in sent), policy
        ttfts = [r.first_token - r.arrival for r in sent if r.first_token is not None]
        assert min(ttfts) >= delay  # the round trip counts in TTFT
    with pytest.raises(scenario.ScenarioError, match="decision_latency"):
        closed(pipeline={"decision_latency": -0.001})


def test_a_benchmark_run_sends_its_prompts_from_the_end_of_the_warmup_and_measures_every_one() -> None:
    sc = closed(arrivals={"process": "closed", "concurrency": 12, "prompts": 100}, duration=900, warmup=10)
    sim = runner.Simulation(runner.prepare(sc, 1), "least_conn")
    result = sim.run()
    assert len(sim.main) == 100 and result.requests == 100  # the budget, all measured
    firsts = sorted(reqs[0].arrival for reqs in by_client(sim).values())
    assert firsts == pytest.approx([10 + c * runner.BENCH_LAUNCH for c in range(12)])  # one launch apart
    for reqs in by_client(sim).values():  # still closed loops: the next request when the previous completes
        assert all(nxt.arrival == prev.finished for prev, nxt in zip(reqs, reqs[1:]))
    assert all(r.finished is not None for r in sim.main)  # the run ends when the last answer is in
    assert sc.with_concurrency(30).arrivals.prompts == 100  # sweeps keep the budget
    with pytest.raises(scenario.ScenarioError, match="arrivals.prompts"):
        closed(arrivals={"process": "poisson", "load": 0.5, "prompts": 100})


def test_a_benchmark_runs_throughput_is_its_requests_over_its_own_duration() -> None:
    sc = closed(arrivals={"process": "closed", "concurrency": 12, "prompts": 100}, duration=900, warmup=10)
    sim = runner.Simulation(runner.prepare(sc, 1), "least_conn")
    result = sim.run()
    last = max(r.finished for r in sim.main if r.finished is not None)
    assert result.throughput_rps == pytest.approx(100 / (last - 10))  # as vLLM's benchmark reports it
