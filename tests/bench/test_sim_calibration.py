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


def test_the_knee_is_the_last_concurrency_before_the_ttft_doubles_an_engine_with_40_slots_knees_at_40() -> None:
    # 40 batch slots and a KV cache that never binds: from the 41st client on, requests wait for a slot
    slots = profile("published-1gpu", {"max_seqs": 40})
    assert calibrate.knee(slots, Workload()) == 40


def test_the_homogeneous_single_node_preset_has_its_ttft_knee_where_the_description_puts_it() -> None:
    # the original's homogeneous test: "single-node knee ~30-40" concurrent
    lo, hi = calibrate.STATED_KNEES["published-1gpu-knee"]
    found = calibrate.knee(PRESETS["published-1gpu-knee"], Workload())
    assert found is not None and lo <= found <= hi
    assert "ok" in calibrate.knee_check("published-1gpu-knee", PRESETS["published-1gpu-knee"], Workload())


def test_an_engine_without_a_knee_up_to_the_limit_reports_none() -> None:
    # every step costs the same whatever it carries, with room for every client: TTFT never grows
    flat = {"step_per_seq": 0.0, "step_per_ctx_token": 0.0, "prefill_rate": 1e12}
    roomy = profile("h100-llama3-8b", {"max_seqs": 1024, "kv_tokens": 10_000_000, **flat})
    assert calibrate.knee(roomy, Workload(), horizon=40.0) is None
    assert calibrate.knee_check("h100-llama3-8b", profile("h100-llama3-8b"), Workload()).endswith("(no knee stated)")
