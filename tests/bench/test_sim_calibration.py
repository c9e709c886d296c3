"""The engine presets against the published anchor and against each other (docs/routing.md, Calibration)."""

from __future__ import annotations

import pytest

from llmsched.bench.sim import calibrate
from llmsched.bench.sim.profiles import PRESETS, profile
from llmsched.bench.sim.workload import Workload


def test_the_h100_preset_reproduces_the_published_sharegpt_run_at_256_slots() -> None:
    # vllm-project/vllm PR #18566: 1000 ShareGPT prompts at once, mean TTFT 9.6 s, mean ITL 38 ms
    result = calibrate.anchor(profile("h100-llama3-8b", {"max_seqs": 256}), Workload())
    assert result["ttft_mean"] == pytest.approx(9.6, rel=0.15)
    assert result["tpot_mean"] == pytest.approx(0.038, rel=0.15)


def test_capacities_keep_the_order_of_the_hardware() -> None:
    wl = Workload()
    caps = {name: calibrate.capacity(p, wl) for name, p in PRESETS.items()}
    assert caps["a10-llama3-8b"] < caps["a100-llama3-8b"] < caps["4xa10-tp4-llama3-8b"] < caps["h100-llama3-8b"]


def test_an_unknown_preset_or_parameter_is_an_error_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="a100-llama3-8b"):
        profile("b200")
    with pytest.raises(ValueError, match="kv_tokens"):
        profile("a100-llama3-8b", {"kv": 1})
