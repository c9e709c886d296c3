"""Hand-computed scores for every mode, on inputs and weights of our own (not the reference file).

Unless a test says otherwise, S1 modes use w_a=0.3, w_b=0.7 and S2 modes w_a=0.5, w_b=0.25, w_g=0.25. Arithmetic is
shown in the comments; the adaptive-distribution values with two members come from z = +-1, i.e.
ad = lo + (hi - lo) * (0.5 -+ 0.5 * tanh(sens / 2)).
"""

from __future__ import annotations

import math

import pytest

from llmsched.scorer import MODE_NAMES, compute_scores
from llmsched.scorer import weights as wt
from llmsched.shared import config_model
from llmsched.shared.config_model import ORIGINAL_MODE_NAMES

S1 = {"w_a": 0.3, "w_b": 0.7}
S2 = {"w_a": 0.5, "w_b": 0.25, "w_g": 0.25}

AD_WIDE = (0.3151531370959961, 0.6848468629040039)  # [0.1, 0.9], sens 1
AD_MEDIUM = (0.2776978666644494, 0.7223021333355505)  # [0.15, 0.85], sens 1.5
AD_CACHE = (0.36422776195327, 0.63577223804673)  # cache [0.35, 0.65], sens 3 (cv 0.111 for [0.4, 0.5])


def m(w: float, c: float, r: float | None = None) -> dict:
    """A member's metrics; r omitted -> no running_req key."""
    d = {"waiting_queue": w, "cache_usage": c}
    if r is not None:
        d["running_req"] = r
    return d


def scores(mode: str, members: list[dict], weights: dict) -> list[float | None]:
    return compute_scores(mode, members, weights)


def close(values: list[float]) -> object:
    return pytest.approx(values, abs=1e-9)


# --- structure of the interface -----------------------------------------------------------------------------------


def test_mode_names_are_the_sixteen_original_modes_in_config_order_then_saturation() -> None:
    assert MODE_NAMES == config_model.MODE_NAMES
    assert MODE_NAMES == ORIGINAL_MODE_NAMES + ("saturation",)
    assert len(ORIGINAL_MODE_NAMES) == 16


def test_unknown_mode_raises_value_error_naming_it_and_the_valid_modes() -> None:
    with pytest.raises(ValueError) as exc:
        compute_scores("s1_enhanced_high_cache", [m(0, 0.5)], S1)
    text = str(exc.value)
    assert "s1_enhanced_high_cache" in text
    assert all(name in text for name in MODE_NAMES)


# One member W=7, C=0.6, R=9: mm -> 0; pc, pr, sm, ad -> 0.5; s1_nonlinear's nC -> 0.5 so A = 0.25.
SINGLE = {
    "s1": 0.58,  # 0.3*1 + 0.7*(1-0.6)
    "s1_enhanced": 0.65,  # 0.3*1 + 0.7*0.5
    "s1_adaptive": 1.0,  # cv 0 -> base weights; 0.3*1 + 0.7*1
    "s1_ratio": -1.45,  # 0.3*(1-7) + 0.7*(1-0.5) = -1.8 + 0.35, not clamped
    "s1_precise": 0.0,  # 0.3*(1-7) + 0.7*0.4 = -1.52 -> clamped
    "s1_nonlinear": 0.825,  # 0.3*1 + 0.7*(1-0.25)
    "s1_balanced": 0.5,  # 0.3*0.5 + 0.7*0.5
    "s1_adaptive_distribution": 0.5,
    "s1_advanced": 0.5,
    "s1_dynamic_waiting": 0.5,  # rescaled weights still sum to 1, times 0.5
    "s2": 0.85,  # 0.5*1 + 0.25*0.4 + 0.25*1
    "s2_enhanced": 0.75,  # 0.5*1 + 0.25*0.5 + 0.25*0.5
    "s2_nonlinear": 1.0,  # 0.5*1 + 0.25*1 + 0.25*1
    "s2_adaptive": 1.0,
    "s2_advanced": 0.5,
    "s2_dynamic_waiting": 0.5,
}

# Two identical members W=2, C=0.3, R=4: as above, except rb -> 0.5 and the raw values change s1_ratio/s1_precise.
ALL_EQUAL = dict(
    SINGLE,
    s1=0.79,  # 0.3*1 + 0.7*0.7
    s1_ratio=0.05,  # 0.3*(1-2) + 0.7*0.5
    s1_precise=0.19,  # 0.3*(1-2) + 0.7*0.7
    s2=0.925,  # 0.5*1 + 0.25*0.7 + 0.25*1
)


@pytest.mark.parametrize("mode", ORIGINAL_MODE_NAMES)
def test_a_single_member_gets_the_documented_structural_score(mode: str) -> None:
    weights = S2 if mode.startswith("s2") else S1
    assert scores(mode, [m(7, 0.6, 9)], weights) == close([SINGLE[mode]])


@pytest.mark.parametrize("mode", ORIGINAL_MODE_NAMES)
def test_all_equal_members_get_equal_documented_scores(mode: str) -> None:
    weights = S2 if mode.startswith("s2") else S1
    assert scores(mode, [m(2, 0.3, 4), m(2, 0.3, 4)], weights) == close([ALL_EQUAL[mode]] * 2)


# --- S1 family ----------------------------------------------------------------------------------------------------


def test_s1_uses_min_max_waiting_and_raw_cache_and_gives_a_full_cache_exactly_zero() -> None:
    # mm(W) = [0, 0.5, 1]: 0.3*[1, 0.5, 0] + 0.7*[0.9, 0.5, 0] = [0.93, 0.5, 0]
    assert scores("s1", [m(0, 0.1), m(2, 0.5), m(4, 1.0)], S1) == close([0.93, 0.5, 0.0])


def test_s1_enhanced_gives_the_worst_member_exactly_zero() -> None:
    # pc(C): log2(C/0.2)/log2(4) = [0, 0.5, 1] -> [0.2, 0.6, 1.0]
    # 0.3*[1, 0.5, 0] + 0.7*[0.8, 0.4, 0] = [0.86, 0.43, 0]
    assert scores("s1_enhanced", [m(0, 0.2), m(2, 0.4), m(4, 0.8)], S1) == [
        pytest.approx(0.86, abs=1e-9),
        pytest.approx(0.43, abs=1e-9),
        0.0,
    ]


def test_s1_enhanced_uses_the_sigmoid_cache_path_when_a_cache_is_zero() -> None:
    # C = [0, 0.5]: z = +-1/3, pc = 0.2 + 0.8/(1+e^(-+2/3)) = [0.471395, 0.728605]
    # 0.3*1 + 0.7*(1 - pc) = [0.670024, 0.489976]
    assert scores("s1_enhanced", [m(1, 0.0), m(1, 0.5)], S1) == close([0.6700235665088576, 0.4899764334911422])


def test_s1_adaptive_shifts_weight_towards_the_more_dispersed_metric() -> None:
    # cv(W=[0,2,4]) = sqrt(8/3)/2 = 0.816, cv(C) = 0 -> w_a' = 0.3*(1+1) = 0.6, w_b' = 0.7; sum 1.3 -> 6/13, 7/13
    # 6/13*(1 - [0, 0.5, 1]) + 7/13*(1 - 0) = [1, 10/13, 7/13]
    got = scores("s1_adaptive", [m(0, 0.3), m(2, 0.3), m(4, 0.3)], S1)
    assert got == close([1.0, 10 / 13, 7 / 13])


def test_s1_adaptive_rescales_to_the_configured_weight_sum() -> None:
    # weights 0.2 + 0.6 = 0.8 (the shipped config); all equal -> every (1 - mm) is 1 -> 0.8
    assert scores("s1_adaptive", [m(1, 0.5), m(1, 0.5)], {"w_a": 0.2, "w_b": 0.6}) == close([0.8, 0.8])


def test_s1_ratio_can_return_negative_scores() -> None:
    # n=2 ratio path: r = 0.6/0.2 = 3 -> rb = [0.25, 0.75]
    # 0.3*(1-0) + 0.7*0.75 = 0.825;  0.3*(1-2) + 0.7*0.25 = -0.3 + 0.175 = -0.125
    assert scores("s1_ratio", [m(0, 0.2), m(2, 0.6)], S1) == close([0.825, -0.125])


def test_s1_ratio_with_three_members_uses_min_max_on_cache() -> None:
    # rb = mm = [0, 0.5, 1]: 0.3*(1-0) + 0.7*[1, 0.5, 0] = [1.0, 0.65, 0.3]; the ratio path would give other values
    assert scores("s1_ratio", [m(0, 0.2), m(0, 0.4), m(0, 0.6)], S1) == close([1.0, 0.65, 0.3])


def test_s1_ratio_with_two_members_and_a_zero_cache_uses_min_max() -> None:
    # rb = mm([0, 0.5]) = [0, 1]: [0.3 + 0.7, 0.3 + 0]
    assert scores("s1_ratio", [m(0, 0.0), m(0, 0.5)], S1) == close([1.0, 0.3])


def test_s1_ratio_is_not_clamped_above_one_either() -> None:
    # weights 2 + 2: 2*(1-0) + 2*(1-0.5) = 3.0
    assert scores("s1_ratio", [m(0, 0.2)], {"w_a": 2.0, "w_b": 2.0}) == close([3.0])


def test_s1_precise_uses_raw_values_and_clamps_at_zero() -> None:
    # 0.3*(1-0) + 0.7*0.8 = 0.86;  0.3*(1-0.5) + 0.7*0.6 = 0.57;  0.3*(1-5) + 0.7*0.9 = -0.57 -> 0
    assert scores("s1_precise", [m(0, 0.2), m(0.5, 0.4), m(5, 0.1)], S1) == close([0.86, 0.57, 0.0])


def test_s1_nonlinear_squares_the_normalised_cache_and_leaves_the_worst_a_sliver() -> None:
    # nW = W/(2+1e-6) = [0, 0.49999975, 0.9999995]; nC = (C-0.2)/(0.4+1e-6) -> squared, re-min-maxed = [0, 0.25, 1]
    # 0.3*(1-nW) + 0.7*(1-A) = [1.0, 0.150000075 + 0.525, 0.3*4.9999975e-7 + 0]
    got = scores("s1_nonlinear", [m(0, 0.2), m(1, 0.4), m(2, 0.6)], S1)
    assert got == close([1.0, 0.675000075, 1.49999925e-07])
    assert got[2] > 0.0


def test_s1_nonlinear_with_equal_cache_uses_a_flat_quarter() -> None:
    # nC = 0.5 -> A = 0.25, constant so not re-min-maxed; nW = [0, 4/4.000001]
    # [0.3 + 0.525, 0.3*(1 - 0.99999975) + 0.525]
    got = scores("s1_nonlinear", [m(0, 0.5), m(4, 0.5)], S1)
    assert got == close([0.825, 0.5250000749999812])


def test_s1_balanced_uses_bands_chosen_by_relative_spread() -> None:
    # W=[2,3]: rel 0.5 -> [0.25, 0.75];  C=[0.5,0.52]: rel 0.04 -> [0.45, 0.55]
    # 0.3*[0.75, 0.25] + 0.7*[0.55, 0.45] = [0.225 + 0.385, 0.075 + 0.315]
    assert scores("s1_balanced", [m(2, 0.5), m(3, 0.52)], S1) == close([0.61, 0.39])


def test_s1_balanced_with_a_zero_minimum_uses_the_absolute_spread() -> None:
    # W=[0,5]: rel 5 -> [0.05, 0.95];  C=[0.1,0.15]: rel 0.5 -> [0.25, 0.75]
    # 0.3*[0.95, 0.05] + 0.7*[0.75, 0.25] = [0.81, 0.19]
    assert scores("s1_balanced", [m(0, 0.1), m(5, 0.15)], S1) == close([0.81, 0.19])


def test_s1_adaptive_distribution_judges_a_wide_waiting_queue_on_a_log_scale() -> None:
    # W=[1,20]: 20 > 10 -> ln([2, 21]), cv 0.629 -> [0.15, 0.85] (raw cv 0.905 would pick [0.1, 0.9])
    # C equal -> 0.5;  0.3*(1 - AD_MEDIUM) + 0.7*0.5 = [0.3*0.722302 + 0.35, 0.3*0.277698 + 0.35]
    got = scores("s1_adaptive_distribution", [m(1, 0.3), m(20, 0.3)], S1)
    assert got == close([0.5666906400006652, 0.43330935999933484])


def test_s1_adaptive_distribution_falls_back_to_ranks_when_outputs_tie() -> None:
    # C = [2, 1, 1e20]: 2 and 1 give the same float output, losing their order -> ranks 1, 0, 2 over [0.1, 0.9]
    # = [0.5, 0.1, 0.9]; W equal -> 0.5;  0.3*0.5 + 0.7*(1 - [0.5, 0.1, 0.9]) = [0.5, 0.78, 0.22]
    got = scores("s1_adaptive_distribution", [m(0, 2.0), m(0, 1.0), m(0, 1e20)], S1)
    assert got == close([0.5, 0.78, 0.22])


def test_s1_advanced_combines_cv_weights_with_adaptive_distribution() -> None:
    # cv(W=[0,4]) = 2/2 = 1, cv(C) = 0 -> weights 6/13, 7/13 (as in s1_adaptive)
    # W: ln([1,5]) cv 1 -> AD_WIDE;  6/13*[0.684847, 0.315153] + 7/13*0.5 = [0.585314, 0.414686]
    got = scores("s1_advanced", [m(0, 0.5), m(4, 0.5)], S1)
    assert got == close([0.5853139367249249, 0.4146860632750751])


def test_s1_dynamic_waiting_without_queues_leans_on_cache() -> None:
    # max(W) = 0 -> I = 0: w_a' = 0.3*0.2 = 0.06, w_b' = 0.7*1.8 = 1.26; /1.32 -> 0.0454545, 0.9545455
    # 0.0454545*0.5 + 0.9545455*(1 - AD_CACHE) = [0.629601, 0.370399]
    got = scores("s1_dynamic_waiting", [m(0, 0.4), m(0, 0.5)], S1)
    assert got == close([0.6296007726809695, 0.3703992273190304])


def test_s1_dynamic_waiting_at_the_transition_point_uses_tanh_one() -> None:
    # I = tanh(30*1/30) = 0.761594: w_a' = 0.3*(0.2 + 2.3I) = 0.585500, w_b' = 0.7*(1.8 - 1.5I) = 0.460326
    # rescaled to sum 1: 0.559844, 0.440156;  W: ln([1,31]) cv 1 -> AD_WIDE;  C equal -> 0.5
    # 0.559844*[0.684847, 0.315153] + 0.440156*0.5 = [0.603485, 0.396515]
    got = scores("s1_dynamic_waiting", [m(0, 0.5), m(30, 0.5)], dict(S1, transition_point=30.0, steepness=1.0))
    assert got == close([0.6034854951927242, 0.3965145048072757])


def test_transition_point_zero_does_not_crash_and_means_full_pressure() -> None:
    # I = 1: w_a' = 0.3*2.5 = 0.75, w_b' = 0.7*0.3 = 0.21; /0.96 -> 0.78125, 0.21875
    # W: ln([1,7]) cv 1 -> AD_WIDE;  0.78125*[0.684847, 0.315153] + 0.21875*0.5 = [0.644412, 0.355588]
    got = scores("s1_dynamic_waiting", [m(0, 0.5), m(6, 0.5)], dict(S1, transition_point=0.0))
    assert got == close([0.644411611643753, 0.35558838835624695])


def test_transition_point_zero_with_empty_queues_means_no_pressure() -> None:
    members = [m(0, 0.4, 1), m(0, 0.5, 3)]
    for mode, weights in (("s1_dynamic_waiting", S1), ("s2_dynamic_waiting", S2)):
        assert scores(mode, members, dict(weights, transition_point=0.0)) == scores(mode, members, weights)


# --- S2 family ----------------------------------------------------------------------------------------------------


def test_s2_adds_min_max_running_requests() -> None:
    # mm(W) = [0, .5, 1], mm(R=[10,5,0]) = [1, .5, 0]
    # 0.5*[1, .5, 0] + 0.25*[0.9, 0.5, 0] + 0.25*[0, .5, 1] = [0.725, 0.5, 0.25]
    assert scores("s2", [m(0, 0.1, 10), m(2, 0.5, 5), m(4, 1.0, 0)], S2) == close([0.725, 0.5, 0.25])


def test_s2_enhanced_uses_precise_cache_and_precise_running() -> None:
    # pc(C=[.2,.4,.8]) = [.2, .6, 1];  pr(R=[0,1,3]): a = [1,2,4] -> [.15, .55, .95]
    # 0.5*[1, .5, 0] + 0.25*[.8, .4, 0] + 0.25*[.85, .45, .05] = [0.9125, 0.4625, 0.0125]
    got = scores("s2_enhanced", [m(0, 0.2, 0), m(2, 0.4, 1), m(4, 0.8, 3)], S2)
    assert got == close([0.9125, 0.4625, 0.0125])


def test_s2_enhanced_uses_the_sigmoid_running_path_for_negative_values() -> None:
    # R = [-1, 1]: z = +-1/3, pr = 0.15 + 0.8/(1+e^(-+2/3)) = [0.421395, 0.678605]
    # 0.5*1 + 0.25*0.5 + 0.25*(1 - pr) = [0.769651, 0.705349]
    got = scores("s2_enhanced", [m(2, 0.3, -1), m(2, 0.3, 1)], S2)
    assert got == close([0.7696512737531634, 0.7053487262468365])


def test_s2_nonlinear_squares_the_complement_and_gives_the_worst_exactly_zero() -> None:
    # (1-mm)^2: W [1, .25, 0], C [1, .25, 0], R=[0,0,8] [1, 1, 0]
    # 0.5*[1, .25, 0] + 0.25*[1, .25, 0] + 0.25*[1, 1, 0] = [1, 0.4375, 0]  (1-mm^2 would give 0.8125)
    got = scores("s2_nonlinear", [m(0, 0.2, 0), m(2, 0.4, 0), m(4, 0.6, 8)], S2)
    assert got == [pytest.approx(1.0, abs=1e-9), pytest.approx(0.4375, abs=1e-9), 0.0]


def test_s2_adaptive_shifts_weight_to_the_dispersed_metric() -> None:
    # only W varies: w_a' = 0.5*2 = 1.0, w_b' = w_g' = 0.25; /1.5 -> 2/3, 1/6, 1/6
    # 2/3*(1 - [0, .5, 1]) + 1/3 = [1, 2/3, 1/3]
    got = scores("s2_adaptive", [m(0, 0.3, 4), m(2, 0.3, 4), m(4, 0.3, 4)], S2)
    assert got == close([1.0, 2 / 3, 1 / 3])


def test_s2_advanced_combines_cv_weights_with_adaptive_distribution() -> None:
    # weights 2/3, 1/6, 1/6 as above (cv(W=[0,4]) = 1);  W -> AD_WIDE;  C, R equal -> 0.5
    # 2/3*[0.684847, 0.315153] + 1/6 = [0.623231, 0.376769]
    got = scores("s2_advanced", [m(0, 0.5, 3), m(4, 0.5, 3)], S2)
    assert got == close([0.6232312419360025, 0.3767687580639974])


def test_s2_advanced_ranks_running_requests_when_outputs_tie() -> None:
    # cv(R=[2,1,1e20]) = sqrt(2): w' = 0.5, 0.25, 0.25*2 -> /1.25 = 0.4, 0.2, 0.4
    # ad(R) falls back to ranks [0.5, 0.1, 0.9];  0.4*0.5 + 0.2*0.5 + 0.4*[0.5, 0.9, 0.1] = [0.5, 0.66, 0.34]
    got = scores("s2_advanced", [m(1, 0.5, 2.0), m(1, 0.5, 1.0), m(1, 0.5, 1e20)], S2)
    assert got == close([0.5, 0.66, 0.34])


def test_s2_dynamic_waiting_without_queues() -> None:
    # I = 0: w' = 0.5*0.1, 0.25*1.5, 0.25*1.4 = 0.05, 0.375, 0.35; /0.775 -> 2/31, 15/31, 14/31
    # C=[.4,.5] -> AD_CACHE;  R=[1,3]: cv 0.5 -> AD_MEDIUM (no log: running_req is not a waiting queue)
    # 2/31*0.5 + 15/31*[0.635772, 0.364228] + 14/31*[0.722302, 0.277698] = [0.666091, 0.333909]
    got = scores("s2_dynamic_waiting", [m(0, 0.4, 1), m(0, 0.5, 3)], S2)
    assert got == close([0.666090756045118, 0.33390924395488203])


# --- validity, defaults and weights -------------------------------------------------------------------------------


def test_members_missing_a_key_get_none_and_do_not_affect_the_others() -> None:
    members = [m(0, 0.1, 10), {"waiting_queue": 100.0, "cache_usage": 0.9}, m(4, 1.0, 0)]
    # s2: the middle member lacks running_req; the others: 0.5*[1, 0] + 0.25*[0.9, 0] + 0.25*[0, 1]
    assert scores("s2", members, S2) == [pytest.approx(0.725, abs=1e-9), None, pytest.approx(0.25, abs=1e-9)]
    # s1 does not need running_req: mm(W=[0,100,4]) = [0, 1, 0.04]
    assert scores("s1", members, S1) == close([0.93, 0.07, 0.288])


def test_missing_waiting_or_cache_gives_none_in_s1_modes() -> None:
    members = [{"cache_usage": 0.5}, {"waiting_queue": 1.0}, m(0, 0.5)]
    assert scores("s1_enhanced", members, S1) == [None, None, pytest.approx(0.65, abs=1e-9)]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_count_as_missing(bad: float) -> None:
    members = [m(0, 0.2), m(bad, 0.4), m(4, 0.8), m(0, bad)]
    # the two valid members alone: mm(W) = [0, 1], pc(C=[.2,.8]) = [.2, 1] -> [0.3 + 0.56, 0]
    assert scores("s1_enhanced", members, S1) == [pytest.approx(0.86, abs=1e-9), None, 0.0, None]


def test_no_valid_member_gives_all_none_and_no_member_gives_empty() -> None:
    assert scores("s2", [m(0, 0.5), {}], S2) == [None, None]
    assert scores("s1", [], S1) == []


@pytest.mark.parametrize("mode", ORIGINAL_MODE_NAMES)
def test_every_mode_returns_one_score_per_member_in_order(mode: str) -> None:
    got = scores(mode, [m(1, 0.2, 3), {}, m(5, 0.7, 1), m(2, 0.4, 8)], S2 if mode.startswith("s2") else S1)
    assert len(got) == 4 and got[1] is None and all(isinstance(v, float) for i, v in enumerate(got) if i != 1)


def test_missing_weights_default_to_half_half() -> None:
    # w_a = w_b = 0.5, w_g = 0: 0.5*[1, 0] + 0.5*[0.8, 0.4] = [0.9, 0.2]
    assert scores("s1", [m(0, 0.2, 0), m(4, 0.6, 9)], {}) == close([0.9, 0.2])
    assert scores("s2", [m(0, 0.2, 0), m(4, 0.6, 9)], {}) == close([0.9, 0.2])


def test_weights_summing_above_one_are_used_as_given_then_clamped() -> None:
    # 1*[1, 0] + 1*[0.8, 0.4] = [1.8 -> 1.0, 0.4]
    assert scores("s1", [m(0, 0.2), m(4, 0.6)], {"w_a": 1.0, "w_b": 1.0}) == close([1.0, 0.4])


def test_weights_summing_below_one_cap_the_best_score() -> None:
    # shipped config 0.2 + 0.6: 0.2*[1, 0] + 0.6*[0.8, 0.4] = [0.68, 0.24]
    assert scores("s1", [m(0, 0.2), m(4, 0.6)], {"w_a": 0.2, "w_b": 0.6}) == close([0.68, 0.24])


# --- the weight adjustments the modes rely on ---------------------------------------------------------------------


def test_adaptive_cv_keeps_the_sign_of_a_negative_mean_and_a_negative_sum_keeps_base_weights() -> None:
    # W = [-1, -3]: sigma 1, mean -2 -> adaptive cv -0.5, advanced 0.5; C = [1, 3]: cv 0.5
    # adaptive: sum cv 0 -> base weights;  advanced: sum 1 -> 0.3*1.5, 0.7*1.5 -> rescaled back to 0.3, 0.7
    assert wt.cv_weights_adaptive((0.3, 0.7), ([-1.0, -3.0], [1.0, 3.0])) == [0.3, 0.7]
    assert wt.cv_weights_advanced((0.3, 0.7), ([-1.0, -3.0], [1.0, 3.0])) == close([0.3, 0.7])
    # C = [1, 2]: cv 1/3. adaptive: sum cv -1/6 is not above 0 -> the original keeps the base weights
    assert wt.cv_weights_adaptive((0.3, 0.7), ([-1.0, -3.0], [1.0, 2.0])) == [0.3, 0.7]
    # advanced: sum cv 5/6 -> 0.3*(1 + 0.6) = 0.48, 0.7*(1 + 0.4) = 0.98; /1.46
    assert wt.cv_weights_advanced((0.3, 0.7), ([-1.0, -3.0], [1.0, 2.0])) == close([0.48 / 1.46, 0.98 / 1.46])


def test_advanced_cv_ignores_a_near_zero_mean_that_adaptive_divides_by() -> None:
    # W = [-1e-7, 1.2e-7]: mean 1e-8 (< 1e-6) -> advanced cv 0; adaptive cv = 1.1e-7/1e-8 = 11
    base, c = (0.3, 0.7), [1.0, 3.0]  # cv(C) = 0.5
    assert wt.cv_weights_advanced(base, ([-1e-7, 1.2e-7], c)) == close([0.3 / 1.7, 1.4 / 1.7])
    assert wt.cv_weights_adaptive(base, ([-1e-7, 1.2e-7], c)) == close(
        [
            0.3 * (1 + 11 / 11.5) / (0.3 * (1 + 11 / 11.5) + 0.7 * (1 + 0.5 / 11.5)),
            0.7 * (1 + 0.5 / 11.5) / (0.3 * (1 + 11 / 11.5) + 0.7 * (1 + 0.5 / 11.5)),
        ]
    )


def test_dynamic_weights_are_rescaled_to_the_original_sum() -> None:
    # S2, I = tanh(15/30) = 0.462117: factors 0.1+2.4I = 1.209081, 1.5-1.1I = 0.991671, 1.4-0.8I = 1.030306
    i = math.tanh(0.5)
    raw = [0.4 * (0.1 + 2.4 * i), 0.3 * (1.5 - 1.1 * i), 0.3 * (1.4 - 0.8 * i)]
    expected = [w / sum(raw) for w in raw]
    assert wt.dynamic_weights_s2((0.4, 0.3, 0.3), [15.0, 3.0], 30.0, 1.0) == close(expected)
    assert sum(wt.dynamic_weights_s1((0.2, 0.6), [15.0], 30.0, 1.0)) == pytest.approx(0.8)
