"""Occupancy: the time-averaged requests each engine holds, as a Grafana panel of running + waiting shows it."""

from __future__ import annotations

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
