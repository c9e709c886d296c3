"""Policy names and what each runs: `default` is the saturation mode through the real decide() with herd
control on, `<mode>_no_herd` the same mode with the weighted random pick, original modes as an upgrade runs them."""

from __future__ import annotations

import textwrap
from collections import Counter

import pytest
import yaml

from llmsched.bench.sim import runner, scenario
from llmsched.bench.sim.policies import ORIGINAL_WEIGHTS, ModePolicy, mode_policy
from llmsched.bench.sim.runner import Simulation

TWO_EQUAL = textwrap.dedent("""
    description: two identical engines
    duration: 20
    warmup: 2
    engines:
      - {name: a, profile: a100-llama3-8b}
      - {name: b, profile: a100-llama3-8b}
    arrivals: {process: poisson, load: 0.3}
    pipeline: {scrape_interval: 1, replicas: 2}
""")


def scored_simulation(policy: str) -> Simulation:
    """A simulation whose pipeline already holds a snapshot of two idle, identical engines."""
    sc = scenario.parse(yaml.safe_load(TWO_EQUAL), "two.yaml", default_name="two")
    sim = Simulation(runner.prepare(sc, 1), policy)
    pipe = sim.pipeline
    pipe.poll(0.0, sim.view.up)
    pipe.write_metrics(0.0, pipe.scrape(0.0, 0.0))
    pipe.score(0.0)
    return sim


def picks(sim: Simulation, n: int) -> list[int]:
    # 2 ms apart: every counter increment has landed before the next decision (dispatch_delay is 1 ms), and
    # the snapshot stays fresh (stale after 3 s)
    return [sim.policy.choose(0.002 * k, runner.Request(k, 100, 10, 0.0), sim.view) for k in range(1, n + 1)]


def test_standard_policies_are_the_issue_names_plus_each_original_mode_without_herd_control() -> None:
    originals = ("s1", "s1_enhanced", "s2", "s2_enhanced", "s2_dynamic_waiting")
    assert scenario.STANDARD_POLICIES == (
        ("random", "round_robin", "least_conn")
        + originals
        + tuple(f"{m}_no_herd" for m in originals)
        + ("default", "default_no_prefix", "default_no_herd", "oracle")
    )
    assert "default_shared_rr" not in scenario.known_policies()
    assert "prefix_only" in scenario.known_policies() and "prefix_only" not in scenario.STANDARD_POLICIES
    assert set(ORIGINAL_WEIGHTS) <= set(scenario.known_policies())
    assert {f"{m}_no_herd" for m in ORIGINAL_WEIGHTS} <= set(scenario.known_policies())


@pytest.mark.parametrize(
    "name, parsed",
    [
        ("default", ("default", True)),
        ("default_no_herd", ("default", False)),
        ("s1", ("s1", True)),
        ("s2_dynamic_waiting_no_herd", ("s2_dynamic_waiting", False)),
        ("least_conn", None),
        ("oracle", None),
        ("default_shared_rr", None),
        ("s9_no_herd", None),
    ],
)
def test_policy_names_map_to_a_mode_and_its_herd_control_setting(name: str, parsed: tuple | None) -> None:
    assert mode_policy(name) == parsed


@pytest.mark.parametrize(
    "name, mode, herd",
    [
        ("default", "saturation", True),
        ("default_no_herd", "saturation", False),
        ("s1", "s1", True),
        ("s1_no_herd", "s1", False),
        ("s2_enhanced", "s2_enhanced", True),
    ],
)
def test_mode_policies_publish_the_routing_config_a_user_would_get(name: str, mode: str, herd: bool) -> None:
    sim = scored_simulation(name)
    assert isinstance(sim.policy, ModePolicy)
    assert sim.pipeline.config["herd_control"] is herd
    assert sim.pipeline.snapshot["mode"] == mode


def test_default_is_the_shared_weighted_round_robin_of_the_real_decide() -> None:
    sim = scored_simulation("default")
    assert [m["score"] for m in sim.pipeline.snapshot["members"]] == [1.0, 1.0]
    first = picks(sim, 6)
    # equal scores: each member gets one decision of every two, whichever replica answers (which one goes
    # first within a pair is the random tie-break)
    assert all(sorted(first[i : i + 2]) == [0, 1] for i in (0, 2, 4))
    assert sim.pipeline.dispatch_counts(1.0) == {mid: 3 for mid in sim.pipeline.ids}
    assert sim.view.none_answers == 0


def test_fresh_metrics_reset_the_counts_default_picks_on() -> None:
    sim = scored_simulation("default")
    picks(sim, 4)
    pipe = sim.pipeline
    pipe.write_metrics(0.5, pipe.scrape(0.5, 0.0))
    assert pipe.dispatch_counts(0.5) == {}


def test_default_no_herd_is_a_weighted_random_pick_that_counts_nothing() -> None:
    sim = scored_simulation("default_no_herd")
    chosen = picks(sim, 400)
    assert sim.pipeline.dispatch_counts(10.0) == {}
    shares = Counter(chosen)
    assert shares[0] / len(chosen) == pytest.approx(0.5, abs=0.08)
    assert sim.view.none_answers == 0
    runs = sum(1 for x, y in zip(chosen, chosen[1:]) if x == y)
    assert runs > 100  # independent draws repeat a member about half the time; the round robin never


def test_herd_control_makes_default_at_least_as_good_as_without_on_a_busy_pool() -> None:
    # four identical engines, two replicas, 1 s scrapes at 85 % load: the shared round robin spreads requests
    # that independent weighted random draws collide
    raw = yaml.safe_load(TWO_EQUAL)
    raw["engines"] = [{"name": f"e{i}", "profile": "a100-llama3-8b"} for i in range(4)]
    raw.update(duration=40, warmup=5, arrivals={"process": "poisson", "load": 0.85})
    prepared = runner.prepare(scenario.parse(raw, "busy.yaml", default_name="busy"), 1)
    with_herd, without = runner.run(prepared, "default"), runner.run(prepared, "default_no_herd")
    assert with_herd.ttft_p99 < without.ttft_p99 and with_herd.ttft_mean < without.ttft_mean
