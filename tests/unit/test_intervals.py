"""A mean reward's interval: Wilson's for 0/1 rewards, Student's t otherwise, as scipy has them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from service.experiments.intervals import (
    Interval,
    Undefined,
    mean_interval,
    student_t_interval,
    wilson_interval,
)
from service.experiments.reward_stats import RewardSummary

FAST = settings(max_examples=300, deadline=None, database=None, derandomize=True)
TOL = {"rel_tol": 1e-9, "abs_tol": 1e-12}
EIGHTHS = st.lists(st.integers(0, 8_000).map(lambda v: v / 8), min_size=2, max_size=60)


def close(ours: Interval, low: float, high: float) -> bool:
    return math.isclose(ours.low, low, **TOL) and math.isclose(ours.high, high, **TOL)


@FAST
@given(
    st.integers(1, 5_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
def test_wilson_equals_scipy(k_n: tuple[int, int], confidence: float) -> None:
    k, n = k_n
    expected = stats.binomtest(k, n).proportion_ci(confidence, method="wilson")
    ours = wilson_interval(k, n, confidence)
    assert close(ours, expected.low, expected.high)
    assert (ours.method, ours.confidence) == ("wilson", confidence)


@pytest.mark.parametrize("n", [2, 7, 100, 10_000])
def test_a_binary_mean_gets_the_wilson_interval_of_its_successes(n: int) -> None:
    values = np.random.default_rng(n).integers(0, 2, n)
    expected = stats.binomtest(int(values.sum()), n).proportion_ci(0.95, method="wilson")
    ours = mean_interval(RewardSummary.from_values(values.tolist()))
    assert isinstance(ours, Interval) and ours.method == "wilson"
    assert close(ours, expected.low, expected.high)


def test_all_zero_rewards_still_bound_the_rate() -> None:
    # Where mean ± z·se collapses to [0, 0], Wilson says how high the rate may still be.
    ours = mean_interval(RewardSummary.from_values([0.0] * 20))
    assert isinstance(ours, Interval)
    assert ours.low == 0.0 and 0.15 < ours.high < 0.17


@pytest.mark.parametrize(("n", "p"), [(20, 0.05), (50, 0.02), (30, 0.1)])
def test_wilson_keeps_its_coverage_where_wald_does_not(n: int, p: float) -> None:
    # Exact coverage: the probability, over k ~ Binomial(n, p), that the interval holds p.
    z = stats.norm.ppf(0.975)
    wilson = wald = 0.0
    for k in range(n + 1):
        weight = stats.binom.pmf(k, n, p)
        ours = wilson_interval(k, n)
        wilson += weight * (ours.low <= p <= ours.high)
        half = z * math.sqrt(k / n * (1 - k / n) / n)
        wald += weight * (k / n - half <= p <= k / n + half)
    assert wilson > 0.92 and wald < 0.82


@FAST
@given(EIGHTHS.filter(lambda v: len(set(v)) > 1), st.sampled_from([0.9, 0.95, 0.99]))
def test_student_t_equals_scipy(values: list[float], confidence: float) -> None:
    summary = RewardSummary.from_values([*values, 0.5])  # never all 0/1
    expected = stats.ttest_1samp([*values, 0.5], 0.0).confidence_interval(confidence)
    ours = mean_interval(summary, confidence)
    assert isinstance(ours, Interval) and ours.method == "student_t"
    assert close(ours, expected.low, expected.high)


@pytest.mark.parametrize("n", [2, 30, 100_000])
def test_student_t_equals_scipy_for_large_rewards(n: int) -> None:
    values = np.random.default_rng(n).random(n) * 1e3
    expected = stats.ttest_1samp(values, 0.0).confidence_interval(0.95)
    ours = student_t_interval(RewardSummary.from_values(values.tolist()))
    assert isinstance(ours, Interval)
    assert close(ours, expected.low, expected.high)


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ([], "fewer than 2 rewards"),
        ([1.0], "fewer than 2 rewards"),
        ([0.3], "fewer than 2 rewards"),
        ([0.25, 0.25, 0.25], "every reward is the same"),
    ],
)
def test_an_interval_the_data_cannot_give_is_undefined(values: list[float], reason: str) -> None:
    assert mean_interval(RewardSummary.from_values(values)) == Undefined(reason)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 95.0, -0.5])
def test_a_confidence_outside_0_1_is_refused(confidence: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        mean_interval(RewardSummary.from_values([0.0, 1.0]), confidence)
