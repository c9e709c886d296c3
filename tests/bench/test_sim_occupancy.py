"""Occupancy: the time-averaged requests each engine holds, as a Grafana panel of running + waiting shows it."""

from __future__ import annotations

import dataclasses

import pytest

from llmsched.bench.sim import occupancy
from llmsched.bench.sim import scenario as scenarios


def test_every_closed_loop_client_is_held_by_some_engine_running_or_waiting() -> None:
    # 120 main clients and 2 x 50 background clients, each always with one request in some engine (less the
    # few milliseconds a request spends on its way in)
    sc = scenarios.load("published_homogeneous_knee").with_concurrency(120)
    occ = occupancy.measure(sc, "least_conn", seed=1)
    held = [r + w for r, w in zip(occ.running, occ.waiting)]
    assert sum(held) == pytest.approx(220, abs=2)
    # least connections splits the main clients evenly, so the two background servers hold 50 more each
    assert held[0] - held[2] == pytest.approx(50, abs=3)
    assert occ.waiting[0] > 20  # past the knee: what the servers cannot admit waits
    assert max(occ.waiting[2:]) < 1


def test_the_occupancy_command_prints_one_row_per_policy(capsys: pytest.CaptureFixture[str]) -> None:
    occupancy.main(["published_homogeneous", "--concurrency", "40", "--policies", "least_conn,default"])
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[1:] == ["gpu1", "gpu2", "gpu3", "gpu4", "gpu5"]
    assert [line.split()[0] for line in out[2:]] == ["least_conn", "default"]


def test_the_published_homogeneous_weights_move_load_as_the_authors_grafana_shows_and_half_waiting_does_not() -> None:
    # The authors' Grafana at ~120 clients: the scheduler brought the two background servers from ~80 requests
    # down to ~55-60 and pushed the other three to ~30-40 (docs/routing.md 5.3 derives the weights from it)
    sc = scenarios.load("published_homogeneous").with_concurrency(120)
    occ = occupancy.measure(sc, "s2_enhanced_no_herd", seed=1)
    held = [r + w for r, w in zip(occ.running, occ.waiting)]
    assert all(55 <= h <= 62 for h in held[:2]), held
    assert all(30 <= h <= 40 for h in held[2:]), held
    # with waiting 0.5 / cache 0.5 and no server queueing, the scores hardly differ: least connections' split
    half = dataclasses.replace(sc, weights={"s2_enhanced": {"w_a": 0.5, "w_b": 0.5, "w_g": 0.0}})
    occ = occupancy.measure(half, "s2_enhanced_no_herd", seed=1)
    assert min(r + w for r, w in zip(occ.running[:2], occ.waiting[:2])) > 68
