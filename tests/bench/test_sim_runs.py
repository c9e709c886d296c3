"""Whole simulations on tiny scenarios: determinism, the pipeline through the real scoring code, failures."""

from __future__ import annotations

import textwrap

import pytest

from llmsched.bench.sim import runner, scenario
from llmsched.bench.sim.pipeline import Pipeline
from llmsched.bench.sim.runner import Simulation

TINY = textwrap.dedent("""
    description: two small engines, a short run
    duration: 40
    warmup: 5
    engines:
      - {name: small, profile: a10-llama3-8b}
      - {name: big, profile: 4xa10-tp4-llama3-8b}
    arrivals: {process: poisson, load: 0.5}
    pipeline: {scrape_interval: 1}
    policies: [least_conn, default, oracle]
""")


def tiny(**changes: object) -> scenario.Scenario:
    import yaml

    raw = yaml.safe_load(TINY)
    raw.update(changes)
    return scenario.parse(raw, "tiny.yaml", default_name="tiny")


def test_the_same_seed_gives_identical_results_and_another_seed_different_ones() -> None:
    sc = tiny()
    a = [r.to_json() for r in map(lambda p: runner.run(runner.prepare(sc, 3), p), sc.policies)]
    b = [r.to_json() for r in map(lambda p: runner.run(runner.prepare(sc, 3), p), sc.policies)]
    c = [r.to_json() for r in map(lambda p: runner.run(runner.prepare(sc, 4), p), sc.policies)]
    assert a == b
    assert a != c


def test_every_policy_sees_the_same_client_requests() -> None:
    prepared = runner.prepare(tiny(), 1)
    results = [runner.run(prepared, p) for p in ("random", "least_conn", "default")]
    assert len({r.requests for r in results}) == 1 and results[0].requests > 0


def test_load_is_a_fraction_of_the_measured_capacity() -> None:
    prepared = runner.prepare(tiny(), 1)
    assert prepared.rate == pytest.approx(0.5 * sum(prepared.capacity))
    sc = prepared.scenario
    assert len(prepared.requests) == pytest.approx(prepared.rate * sc.duration, rel=0.2)


def test_the_default_policy_decides_on_snapshots_built_by_the_real_scoring_step() -> None:
    sim = Simulation(runner.prepare(tiny(), 1), "default")
    result = sim.run()
    pipe: Pipeline = sim.pipeline
    assert pipe.snapshots >= 35  # one per 1 s scrape cycle
    assert pipe.snapshot["mode"] == "saturation"
    assert all(m["score"] is not None for m in pipe.snapshot["members"])
    assert result.failed == 0 and sum(result.share.values()) == pytest.approx(1.0)


def test_dispatch_counters_land_after_the_delay_and_reset_when_fresh_metrics_are_written() -> None:
    sim = Simulation(runner.prepare(tiny(), 1), "default")
    pipe = sim.pipeline
    member = pipe.ids[0]
    pipe.record_dispatch(10.0, member)
    assert pipe.dispatch_counts(10.0) == {}
    assert pipe.dispatch_counts(10.0 + pipe.dispatch_delay) == {member: 1}
    pipe.write_metrics(11.0, pipe.scrape(11.0, 0.01))
    assert pipe.dispatch_counts(11.0) == {}


def test_before_the_first_snapshot_the_mode_answers_none_and_bigip_balances() -> None:
    prepared = runner.prepare(tiny(), 1)
    sim = Simulation(prepared, "default")
    req = runner.Request(1, 100, 10, 0.0)
    assert sim.pipeline.snapshot is None
    assert sim.policy.choose(0.0, req, sim.view) in (0, 1)
    assert sim.view.none_answers == 1


def test_a_dead_engine_is_a_black_hole_for_least_conn_until_the_monitor_marks_it_down() -> None:
    sc = tiny(failures=[{"engine": "big", "at": 10}], duration=60)
    prepared = runner.prepare(sc, 1)
    least = runner.run(prepared, "least_conn")
    default = runner.run(prepared, "default")
    assert least.failed > 0
    assert default.failed < least.failed  # scrapes fail at once; the monitor needs up to 16 s


def test_background_clients_bypass_bigip() -> None:
    sc = tiny(background=[{"engine": "small", "concurrency": 4}])
    sim = Simulation(runner.prepare(sc, 1), "least_conn")
    sim.run()
    assert all(c == 0 for c in sim.view.conns)  # only balanced requests were ever counted
    assert sim.engines[0].steps > 0
