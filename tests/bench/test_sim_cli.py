"""`llmsched bench routing`: --list, the --json schema, progress on stderr, and scenario errors."""

from __future__ import annotations

import json
import random
import statistics
import textwrap
from pathlib import Path

import pytest

from llmsched.bench.sim import scenario
from llmsched.bench.sim.workload import Arrivals, Workload
from llmsched.cli.main import main

TINY = textwrap.dedent("""
    description: tiny
    duration: 20
    warmup: 2
    engines:
      - {name: e1, profile: a100-llama3-8b}
      - {name: e2, profile: a100-llama3-8b}
    arrivals: {process: poisson, load: 0.3}
    pipeline: {scrape_interval: 1}
    policies: [least_conn, default]
""")


@pytest.fixture()
def tiny_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def test_list_prints_the_shipped_scenarios_one_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "routing", "--list"]) == 0
    names = capsys.readouterr().out.split()
    assert names == scenario.shipped()
    assert {"heterogeneous", "homogeneous_background", "bursty", "engine_failure", "replicas"} <= set(names)


def test_every_shipped_scenario_parses_with_either_an_open_loop_load_or_closed_loop_clients() -> None:
    for name in scenario.shipped():
        sc = scenario.load(name)
        assert sc.engines and sc.policies
        if sc.arrivals.closed:
            assert sc.arrivals.concurrency >= 1 and sc.load == 0
        elif sc.workload.prefixes is None:
            assert 0 < sc.load < 1
        else:  # load is relative to serving every prefix without reuse: caching can take more
            assert 0 < sc.load <= 2


def test_the_published_scenarios_carry_their_sweeps_and_the_weights_the_original_ran() -> None:
    het, hom = scenario.load("published_heterogeneous"), scenario.load("published_homogeneous")
    assert het.sweep and het.sweep.concurrency == (10, 20, 30, 40, 50) and het.sweep.original == "s1_enhanced_no_herd"
    assert het.mode_weights("s1_enhanced")["w_a"] == 0.1 and het.mode_weights("s1_enhanced")["w_b"] == 0.9
    assert hom.sweep and hom.sweep.concurrency == tuple(range(40, 201, 20))
    assert hom.sweep.original == "s2_enhanced_no_herd" and hom.mode_weights("s2_enhanced")["w_g"] == 0.0
    assert len(hom.sweep.published) == 9 and hom.sweep.row(200).tolerance == 20
    assert sum(b.concurrency for b in hom.background) == 100


def test_json_output_has_the_documented_schema(tiny_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "routing", "--scenario", str(tiny_file), "--seed", "2", "--json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["scenario"] == "tiny"
    assert [r["policy"] for r in doc["results"]] == ["least_conn", "default"]
    for row in doc["results"]:
        for key in ("ttft_mean", "ttft_p50", "ttft_p99", "tpot_mean", "e2e_p99", "throughput_rps"):
            assert isinstance(row[key], float) and row[key] > 0
        assert set(row["share"]) == {"e1", "e2"} and sum(row["share"].values()) == pytest.approx(1.0)
        assert row["ttft_p50"] <= row["ttft_p99"]
    assert "[2/2] default" in captured.err  # progress goes to stderr


def test_policies_option_selects_and_orders_policies(tiny_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "routing", "--scenario", str(tiny_file), "--json", "--policies", "oracle,random"]) == 0
    assert [r["policy"] for r in json.loads(capsys.readouterr().out)["results"]] == ["oracle", "random"]


def test_human_output_is_a_table(tiny_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "routing", "--scenario", str(tiny_file)]) == 0
    out = capsys.readouterr().out
    assert "TTFT mean" in out and "least_conn" in out and "default" in out


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("duration: 10\nengines: [{name: a, profile: nope}]\narrivals: {load: 0.5}\n", "unknown engine profile 'nope'"),
        (
            "duration: 10\nengines: [{name: a, profile: a100-llama3-8b}]\narrivals: {load: 0.5}\nfoo: 1\n",
            "scenario.foo: unknown key",
        ),
        (
            "duration: 10\nengines: [{name: a, profile: a100-llama3-8b}]\narrivals: {load: 0.5}\n"
            "background: [{engine: b, concurrency: 3}]\n",
            "background[0].engine: 'b' is not an engine name",
        ),
        (
            "duration: 10\nengines: [{name: a, profile: a100-llama3-8b, params: {kv: 3}}]\narrivals: {load: 0.5}\n",
            "unknown engine parameter(s) kv",
        ),
        (
            "duration: 10\nengines: [{name: a, profile: a100-llama3-8b}]\narrivals: {load: 0.5}\npolicies: [best]\n",
            "unknown policy 'best'",
        ),
    ],
)
def test_a_bad_scenario_is_an_error_naming_the_file_and_the_key(
    tmp_path: Path, yaml_text: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    assert main(["bench", "routing", "--scenario", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err


def test_an_unknown_scenario_name_lists_the_shipped_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "routing", "--scenario", "nope"]) == 2
    assert "heterogeneous" in capsys.readouterr().err


def test_sharegpt_like_lengths_have_the_published_means() -> None:
    rng = random.Random(5)
    draws = [Workload().draw(rng) for _ in range(20_000)]
    assert statistics.fmean(p for p, _ in draws) == pytest.approx(230, rel=0.05)
    assert statistics.fmean(o for _, o in draws) == pytest.approx(203, rel=0.05)
    assert all(4 <= p <= 1024 and o >= 4 and p + o <= 2048 for p, o in draws)


@pytest.mark.parametrize("arrivals", [Arrivals("poisson"), Arrivals("bursty", on_mean=2, off_mean=6, peak=2.0)])
def test_arrival_processes_keep_the_requested_mean_rate(arrivals: Arrivals) -> None:
    times = list(arrivals.times(20.0, 0.0, 2000.0, random.Random(9)))
    assert len(times) / 2000.0 == pytest.approx(20.0, rel=0.05)
    assert times == sorted(times)
