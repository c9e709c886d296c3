"""Edge cases of each normaliser, with expected values worked out by hand."""

from __future__ import annotations

import math

import pytest

from llmsched.scorer import normalizers as nz

approx = lambda values: pytest.approx(values, abs=1e-12)


# --- min-max ------------------------------------------------------------------------------------------------------


def test_min_max_maps_min_to_zero_and_max_to_one() -> None:
    # (x - 2) / (6 - 2)
    assert nz.min_max([2.0, 4.0, 6.0, 3.0]) == approx([0.0, 0.5, 1.0, 0.25])


def test_min_max_of_one_value_is_zero() -> None:
    assert nz.min_max([7.0]) == [0.0]


def test_min_max_of_equal_values_is_all_zeros() -> None:
    assert nz.min_max([3.0, 3.0, 3.0]) == [0.0, 0.0, 0.0]


def test_min_max_of_nothing_is_empty() -> None:
    assert nz.min_max([]) == []


def test_soft_min_max_adds_one_millionth_to_the_range() -> None:
    # (x - 0) / (2 - 0 + 1e-6): the top value stays just below 1
    assert nz.soft_min_max([0.0, 2.0], 0.0) == approx([0.0, 2.0 / 2.000001])


def test_soft_min_max_of_equal_values_uses_the_given_fill() -> None:
    assert nz.soft_min_max([0.4, 0.4], 0.5) == [0.5, 0.5]
    assert nz.soft_min_max([9.0], 0.0) == [0.0]


# --- precise cache ------------------------------------------------------------------------------------------------


def test_precise_cache_is_a_log_ratio_from_point_two_to_one_when_min_positive() -> None:
    # log2(x/0.2) / log2(0.8/0.2) = [0, 1, 2] / 2  ->  0.2 + 0.8 * [0, 0.5, 1]
    assert nz.precise_cache([0.2, 0.4, 0.8]) == approx([0.2, 0.6, 1.0])


def test_precise_cache_stretches_a_tiny_difference_to_the_full_range() -> None:
    # 0.85 vs 0.87: min -> 0.2, max -> 1.0, whatever the gap
    assert nz.precise_cache([0.85, 0.87]) == approx([0.2, 1.0])


def test_precise_cache_of_one_value_or_equal_values_is_one_half() -> None:
    assert nz.precise_cache([0.3]) == [0.5]
    assert nz.precise_cache([0.3, 0.3]) == [0.5, 0.5]


def test_precise_cache_uses_the_sigmoid_when_a_value_is_not_positive() -> None:
    # [0, 0.5]: mean 0.25, sigma 0.25, z = +-0.25/(3*0.25) = +-1/3
    # 0.2 + 0.8/(1+e^(-2z)): 1/(1+e^(2/3)) = 0.339243631..., so 0.2 + 0.8*0.339243631 = 0.471394905
    assert nz.precise_cache([0.0, 0.5]) == approx([0.47139490498734626, 0.7286050950126539])


# --- precise running ----------------------------------------------------------------------------------------------


def test_precise_running_is_a_log_ratio_of_x_plus_one_from_point_fifteen_to_point_ninety_five() -> None:
    # a = [1, 2, 4]: log2(a/1)/log2(4) = [0, 0.5, 1]  ->  0.15 + 0.8 * [0, 0.5, 1]
    assert nz.precise_running([0.0, 1.0, 3.0]) == approx([0.15, 0.55, 0.95])


def test_precise_running_of_one_value_or_equal_values_is_one_half() -> None:
    assert nz.precise_running([4.0]) == [0.5]
    assert nz.precise_running([4.0, 4.0]) == [0.5, 0.5]


def test_precise_running_uses_the_sigmoid_when_a_value_is_negative() -> None:
    # [-1, 1]: mean 0, sigma 1, z = +-1/3; 0.15 + 0.8 * [0.339243631, 0.660756369]
    assert nz.precise_running([-1.0, 1.0]) == approx([0.4213949049873462, 0.6786050950126539])


# --- ratio-based --------------------------------------------------------------------------------------------------


def test_ratio_based_with_two_positive_values_splits_by_their_ratio() -> None:
    # r = 0.6/0.2 = 3: larger 3/4, smaller 1/4, in input order
    assert nz.ratio_based([0.6, 0.2]) == approx([0.75, 0.25])
    assert nz.ratio_based([0.2, 0.6]) == approx([0.25, 0.75])


def test_ratio_based_with_two_equal_values_is_one_half_each() -> None:
    assert nz.ratio_based([0.4, 0.4]) == [0.5, 0.5]


def test_ratio_based_with_a_zero_falls_back_to_min_max() -> None:
    assert nz.ratio_based([0.0, 0.5]) == [0.0, 1.0]


def test_ratio_based_with_three_values_is_plain_min_max() -> None:
    assert nz.ratio_based([0.2, 0.4, 0.6]) == approx([0.0, 0.5, 1.0])


def test_ratio_based_of_one_value_is_one_half() -> None:
    assert nz.ratio_based([0.9]) == [0.5]


# --- smooth -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "band"),
    [
        ([0.5, 0.52], (0.45, 0.55)),  # rel = 0.02/0.5 = 0.04 < 0.1
        ([1.0, 1.2], (0.35, 0.65)),  # rel = 0.2 < 0.3
        ([2.0, 3.0], (0.25, 0.75)),  # rel = 0.5 < 0.8
        ([1.0, 2.5], (0.15, 0.85)),  # rel = 1.5 < 2.0
        ([1.0, 4.0], (0.05, 0.95)),  # rel = 3.0
        ([0.0, 0.05], (0.45, 0.55)),  # min 0: rel = max - min = 0.05 < 0.1
        ([0.0, 5.0], (0.05, 0.95)),  # min 0: rel = 5
    ],
)
def test_smooth_squeezes_min_max_into_a_band_chosen_by_relative_spread(
    values: list[float], band: tuple[float, float]
) -> None:
    assert nz.smooth(values) == approx(list(band))


def test_smooth_places_middle_values_linearly_inside_the_band() -> None:
    # rel = (3-2)/2 = 0.5 -> [0.25, 0.75]; mm = [0, 0.5, 1]
    assert nz.smooth([2.0, 2.5, 3.0]) == approx([0.25, 0.5, 0.75])


def test_smooth_of_one_value_or_equal_values_is_one_half() -> None:
    assert nz.smooth([3.0]) == [0.5]
    assert nz.smooth([3.0, 3.0]) == [0.5, 0.5]


# --- adaptive distribution ----------------------------------------------------------------------------------------
# With two members z = +-1, so ad = lo + (hi - lo) * (0.5 +- 0.5 * tanh(sens / 2)).
AD_WIDE = [0.3151531370959961, 0.6848468629040039]  # [0.1, 0.9], sens 1:   0.1 + 0.8*(0.5 -+ 0.5*tanh 0.5)
AD_MEDIUM = [0.2776978666644494, 0.7223021333355505]  # [0.15, 0.85], sens 1.5: 0.15 + 0.7*(0.5 -+ 0.5*tanh 0.75)
AD_CACHE = [0.36422776195327, 0.63577223804673]  # [0.35, 0.65], sens 3:  0.35 + 0.3*(0.5 -+ 0.5*tanh 1.5)


def test_adaptive_distribution_of_one_value_is_one_half() -> None:
    assert nz.adaptive_distribution([5.0], "waiting_queue") == [0.5]


def test_adaptive_distribution_of_equal_values_is_one_half() -> None:
    # sigma 0 -> 1e-6, z = 0, and every band is centred on 0.5
    assert nz.adaptive_distribution([0.3, 0.3, 0.3], "cache_usage") == approx([0.5, 0.5, 0.5])


def test_adaptive_distribution_band_follows_the_coefficient_of_variation() -> None:
    # [2, 4]: mean 3, sigma 1, cv 1/3 -> sens 1.5, [0.15, 0.85]
    assert nz.adaptive_distribution([2.0, 4.0]) == approx(AD_MEDIUM)
    # [1, 20]: mean 10.5, sigma 9.5, cv 0.905 -> sens 1, [0.1, 0.9]
    assert nz.adaptive_distribution([1.0, 20.0]) == approx(AD_WIDE)
    # [10, 11]: cv 0.5/10.5 = 0.048 -> sens 3, [0.4, 0.6]: 0.4 + 0.2*(0.5 -+ 0.5*tanh 1.5)
    assert nz.adaptive_distribution([10.0, 11.0]) == approx([0.40948517463551337, 0.5905148253644867])


def test_adaptive_distribution_recurses_on_log_for_a_waiting_queue_spanning_ten_times() -> None:
    # 20 > 10*1 -> ln([2, 21]) = [0.693, 3.045]: mean 1.869, sigma 1.176, cv 0.629 -> [0.15, 0.85], sens 1.5
    # (as a general metric the same values get the wide band, see above)
    assert nz.adaptive_distribution([1.0, 20.0], "waiting_queue") == approx(AD_MEDIUM)
    # [1, 10]: 10 is not > 10*1, no recursion: raw mean 5.5, sigma 4.5, cv 0.818 -> [0.1, 0.9], sens 1
    assert nz.adaptive_distribution([1.0, 10.0], "waiting_queue") == approx(AD_WIDE)
    # min 0: any positive max exceeds 10*min, so [0, 1, 4] is judged as ln([1, 2, 5]) with type "general"
    logs = [0.0, math.log(2.0), math.log(5.0)]
    as_queue = nz.adaptive_distribution([0.0, 1.0, 4.0], "waiting_queue")
    assert as_queue == approx(nz.adaptive_distribution(logs))
    assert as_queue != approx(nz.adaptive_distribution([0.0, 1.0, 4.0]))


def test_adaptive_distribution_recursion_needs_a_non_negative_minimum() -> None:
    # [-1, 20]: min < 0 -> no log; mean 9.5, sigma 10.5, cv 1.105 -> [0.1, 0.9]
    assert nz.adaptive_distribution([-1.0, 20.0], "waiting_queue") == approx(AD_WIDE)


def test_adaptive_distribution_gives_cache_usage_more_sensitivity_and_a_narrow_band() -> None:
    # [0.4, 0.5]: cv 0.05/0.45 = 0.111 -> sens 2.0*1.5 = 3.0, and cv < 0.2 -> [0.35, 0.65]
    assert nz.adaptive_distribution([0.4, 0.5], "cache_usage") == approx(AD_CACHE)
    # the same values as a general metric: sens 2.0, [0.25, 0.75]: 0.25 + 0.5*(0.5 -+ 0.5*tanh 1)
    assert nz.adaptive_distribution([0.4, 0.5]) == approx([0.3096014610110588, 0.6903985389889412])


def test_adaptive_distribution_treats_running_req_like_a_general_metric() -> None:
    assert nz.adaptive_distribution([1.0, 20.0], "running_req") == nz.adaptive_distribution([1.0, 20.0])


def test_adaptive_distribution_falls_back_to_ranks_when_outputs_lose_the_input_order() -> None:
    # 2 - mean and 1 - mean round to the same float when mean = 3.3e19, so both get the same tanh output and the
    # outputs' stable order [0, 1, 2] differs from the inputs' [1, 0, 2]: ranks 1, 0, 2 over [0.1, 0.9] (cv 1.41)
    assert nz.adaptive_distribution([2.0, 1.0, 1e20], "cache_usage") == approx([0.5, 0.1, 0.9])


def test_adaptive_distribution_ranks_ties_by_index_in_the_fallback() -> None:
    # inputs [1, 1, 2, 1e20] order [0, 1, 2, 3]; outputs of 1, 1 and 2 collide -> order still [0, 1, 2, 3],
    # so no fallback is needed and the equal inputs keep equal outputs
    out = nz.adaptive_distribution([1.0, 1.0, 2.0, 1e20])
    assert out[0] == out[1] == out[2]
    # reversed, the collision breaks the order: ranks 2, 1, 0 for the three small values, 3 for the big one
    assert nz.adaptive_distribution([2.0, 1.0, 1.0, 1e20]) == approx([0.1 + 2 / 3 * 0.8, 0.1, 0.1 + 1 / 3 * 0.8, 0.9])


def test_pop_std_divides_by_n() -> None:
    assert nz.pop_std([1.0, 3.0]) == 1.0
    assert math.isclose(nz.pop_std([0.0, 2.0, 4.0]), math.sqrt(8 / 3))
