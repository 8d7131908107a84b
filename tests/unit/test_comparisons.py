"""A candidate against the control: Welch's t-test and the two-proportion test, as scipy
computes them on the same raw rewards, and the cases where there is nothing to say."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from service.experiments.comparisons import (
    TWO_PROPORTIONS,
    WELCH,
    Comparison,
    compare,
    two_proportions,
    welch,
)
from service.experiments.intervals import Undefined
from service.experiments.reward_stats import RewardSummary

# scipy warns when one side's rewards are all equal: its result still is the reference.
CONSTANT_SIDE = pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")
FAST = settings(max_examples=300, deadline=None, database=None, derandomize=True)
TOL = {"rel_tol": 1e-9, "abs_tol": 1e-12}
EIGHTHS = st.lists(st.integers(0, 8_000).map(lambda v: v / 8), min_size=2, max_size=60)
COUNTS = st.integers(2, 3_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


def summary(values: list[float] | np.ndarray) -> RewardSummary:
    return RewardSummary.from_values(np.asarray(values, dtype=float).tolist())


def binary(k: int, n: int) -> list[float]:
    return [1.0] * k + [0.0] * (n - k)


def assert_welch_equals_scipy(
    control: list[float] | np.ndarray, candidate: list[float] | np.ndarray, confidence: float
) -> None:
    result = welch(summary(control), summary(candidate), confidence)
    expected = stats.ttest_ind(candidate, control, equal_var=False)
    interval = expected.confidence_interval(confidence)
    assert isinstance(result, Comparison) and result.test == WELCH
    assert math.isclose(result.statistic, expected.statistic, **TOL)
    assert math.isclose(result.p_value, expected.pvalue, **TOL)
    assert result.df is not None and math.isclose(result.df, expected.df, **TOL)
    assert math.isclose(result.difference, np.mean(candidate) - np.mean(control), **TOL)
    assert math.isclose(result.interval.low, interval.low, **TOL)
    assert math.isclose(result.interval.high, interval.high, **TOL)


@CONSTANT_SIDE
@FAST
@given(EIGHTHS, EIGHTHS, st.sampled_from([0.9, 0.95, 0.99]))
def test_welch_equals_scipy(control: list[float], candidate: list[float], level: float) -> None:
    if len(set(control)) == 1 and len(set(candidate)) == 1:
        assert welch(summary(control), summary(candidate)) == Undefined(
            "every reward is the same on both sides"
        )
    else:
        assert_welch_equals_scipy(control, candidate, level)


@pytest.mark.parametrize("n", [2, 50, 20_000])
@pytest.mark.parametrize("scale", [1.0, 1e3])
def test_welch_equals_scipy_on_realistic_rewards(n: int, scale: float) -> None:
    rng = np.random.default_rng(n)
    control = rng.random(n) * scale
    candidate = (rng.random(n // 2 + 2) + 0.05) * scale  # unequal sizes and a shift
    assert_welch_equals_scipy(control, candidate, 0.95)


@CONSTANT_SIDE
def test_welch_with_one_side_without_spread_equals_scipy() -> None:
    assert_welch_equals_scipy([0.5] * 10, [0.25, 0.75, 1.5, 0.125], 0.95)


@FAST
@given(COUNTS, COUNTS, st.sampled_from([0.9, 0.95, 0.99]))
def test_two_proportions_equals_scipy(
    control: tuple[int, int], candidate: tuple[int, int], level: float
) -> None:
    (k1, n1), (k2, n2) = control, candidate
    result = two_proportions(summary(binary(k1, n1)), summary(binary(k2, n2)), level)
    if k1 + k2 in (0, n1 + n2):
        assert result == Undefined("every reward is the same on both sides")
        return
    assert isinstance(result, Comparison) and result.test == TWO_PROPORTIONS
    table = [[k1, n1 - k1], [k2, n2 - k2]]
    chi2, p_value, _, _ = stats.chi2_contingency(table, correction=False)
    assert math.isclose(result.p_value, p_value, **TOL)
    assert math.isclose(result.statistic**2, chi2, **TOL)
    assert (result.statistic > 0) is (k2 / n2 > k1 / n1) or result.statistic == 0
    # Newcombe's hybrid score interval from scipy's Wilson intervals of each side.
    p1, p2 = k1 / n1, k2 / n2
    w1 = stats.binomtest(k1, n1).proportion_ci(level, method="wilson")
    w2 = stats.binomtest(k2, n2).proportion_ci(level, method="wilson")
    low = p2 - p1 - math.sqrt((p2 - w2.low) ** 2 + (w1.high - p1) ** 2)
    high = p2 - p1 + math.sqrt((w2.high - p2) ** 2 + (p1 - w1.low) ** 2)
    assert math.isclose(result.difference, p2 - p1, **TOL)
    assert math.isclose(result.interval.low, low, **TOL)
    assert math.isclose(result.interval.high, high, **TOL)
    assert -1.0 <= result.interval.low <= result.interval.high <= 1.0
    assert result.df is None and result.interval.method == "newcombe"


def test_the_pooled_z_test_is_the_textbook_formula() -> None:
    # 50/100 against 65/100: pooled 0.575, z = 0.15 / sqrt(0.575 * 0.425 * 0.02).
    result = two_proportions(summary(binary(50, 100)), summary(binary(65, 100)))
    z = 0.15 / math.sqrt(0.575 * 0.425 * 0.02)
    assert isinstance(result, Comparison)
    assert math.isclose(result.statistic, z, **TOL)
    assert math.isclose(result.p_value, 2 * stats.norm.sf(z), **TOL)


@pytest.mark.parametrize(("n1", "p1", "n2", "p2"), [(20, 0.05, 20, 0.15), (30, 0.1, 30, 0.1)])
def test_newcombe_keeps_its_coverage_with_small_samples(
    n1: int, p1: float, n2: int, p2: float
) -> None:
    # Exact coverage over both binomials; the unpooled Wald interval stays below 0.95.
    z = stats.norm.ppf(0.975)
    newcombe = wald = 0.0
    for k1 in range(n1 + 1):
        for k2 in range(n2 + 1):
            weight = stats.binom.pmf(k1, n1, p1) * stats.binom.pmf(k2, n2, p2)
            result = two_proportions(summary(binary(k1, n1)), summary(binary(k2, n2)))
            if isinstance(result, Comparison):
                newcombe += weight * (result.interval.low <= p2 - p1 <= result.interval.high)
            a, b = k1 / n1, k2 / n2
            half = z * math.sqrt(a * (1 - a) / n1 + b * (1 - b) / n2)
            wald += weight * (b - a - half <= p2 - p1 <= b - a + half)
    assert newcombe > 0.95 > wald


def test_compare_uses_the_proportion_test_only_when_both_sides_are_0_1() -> None:
    zeros_ones = summary([0, 1, 1, 0, 1])
    scores = summary([0.2, 0.9, 0.4])
    both = compare(zeros_ones, summary([1, 1, 0]))
    assert isinstance(both, Comparison) and both.test == TWO_PROPORTIONS
    for control, candidate in ((zeros_ones, scores), (scores, zeros_ones), (scores, scores)):
        result = compare(control, candidate)
        assert isinstance(result, Comparison) and result.test == WELCH


def test_a_clear_ab_difference_is_found_with_its_interval() -> None:
    # The scenario: 0.50 against 0.56, a few thousand rewards a side.
    rng = np.random.default_rng(7)
    control = (rng.random(4_000) < 0.50).astype(float)
    candidate = (rng.random(4_000) < 0.56).astype(float)
    result = compare(summary(control), summary(candidate))
    assert isinstance(result, Comparison) and result.test == TWO_PROPORTIONS
    assert result.p_value < 0.01
    assert result.interval.low < 0.06 < result.interval.high


EMPTY, ONE = RewardSummary(), summary([1.0])
Test = Callable[[RewardSummary, RewardSummary], Comparison | Undefined]


@pytest.mark.parametrize("test", [welch, two_proportions, compare])
@pytest.mark.parametrize(
    ("control", "candidate", "reason"),
    [
        (EMPTY, summary([0, 1]), "no feedback for the control"),
        (summary([0.5, 1]), EMPTY, "no feedback for the candidate"),
        (EMPTY, EMPTY, "no feedback for the control"),
        (ONE, summary([0, 1]), "fewer than 2 rewards for the control"),
        (summary([0, 1]), ONE, "fewer than 2 rewards for the candidate"),
        (summary([1, 1]), summary([1, 1, 1]), "every reward is the same on both sides"),
        (summary([0, 0]), summary([0, 0, 0]), "every reward is the same on both sides"),
    ],
)
def test_what_the_data_cannot_say_is_undefined_with_a_reason(
    test: Test, control: RewardSummary, candidate: RewardSummary, reason: str
) -> None:
    assert test(control, candidate) == Undefined(reason)


def test_welch_without_spread_on_both_sides_is_undefined() -> None:
    assert welch(summary([0.5, 0.5]), summary([0.75] * 3)) == Undefined(
        "every reward is the same on both sides"
    )


def test_the_proportion_test_refuses_rewards_that_are_not_0_1() -> None:
    assert two_proportions(summary([0, 1]), summary([0.5, 1])) == Undefined(
        "rewards are not all 0 or 1"
    )
