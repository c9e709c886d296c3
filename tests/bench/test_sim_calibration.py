"""The presets against the datasheet roofline they are derived from, and the H100 preset against the published
anchor (docs/routing.md, Calibration).

The anchor test alone cannot catch much: the H100 preset's step_per_seq was fitted to that run. The roofline test
uses numbers computed here from the datasheets, independent of the code; the step-time model itself is checked
against hand-computed timings in test_sim_engine.py.
"""

from __future__ import annotations

import pytest

from llmsched.bench.sim import calibrate
from llmsched.bench.sim.profiles import PRESETS, profile
from llmsched.bench.sim.workload import Workload

# Datasheet memory bandwidth (bytes/s) of the single-GPU presets; Llama-3.1-8B bf16 weights are 16.06 GB.
BANDWIDTH = {"a10-llama3-8b": 600e9, "a100-llama3-8b": 2.04e12, "h100-llama3-8b": 3.35e12}
WEIGHTS = 16.06e9


@pytest.mark.parametrize("name", sorted(BANDWIDTH))
def test_step_base_is_reading_the_weights_once_at_85_percent_of_the_bandwidth_plus_launch_overhead(name) -> None:
    roofline = WEIGHTS / (BANDWIDTH[name] * 0.85) + 0.0015
    assert PRESETS[name].step_base == pytest.approx(roofline, rel=0.1)


def test_the_h100_preset_reproduces_the_published_sharegpt_run_at_256_slots() -> None:
    # vllm-project/vllm PR #18566: 1000 ShareGPT prompts at once, mean TTFT 9.6 s, mean ITL 38 ms. step_per_seq
    # was fitted to this run, so this is a regression check of the fit, not an independent validation.
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
