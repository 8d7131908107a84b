"""RewardSummary: sums that add up across replicas give numpy's mean and variance."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.experiments.reward_stats import RewardSummary

FAST = settings(max_examples=300, deadline=None, database=None, derandomize=True)
RNG_SEED = 20240612

# Rewards as they come: 0/1 labels, scores in [0, 1], amounts up to 1e3.
REALISTIC = {
    "binary": lambda rng, n: rng.integers(0, 2, n).astype(float),
    "unit": lambda rng, n: rng.random(n),
    "amounts": lambda rng, n: rng.random(n) * 1e3,
    "skewed": lambda rng, n: rng.exponential(50.0, n),
}


def counters_on_replicas(values: np.ndarray, replicas: int) -> RewardSummary:
    """What Prometheus sums: per-replica counters, each incremented one reward at a time."""
    fleet = RewardSummary()
    for part in np.array_split(values, replicas):
        count, total, total_sq, non_binary = 0, 0.0, 0.0, 0
        for v in part.tolist():
            count, total, total_sq = count + 1, total + v, total_sq + v * v
            non_binary += v not in (0.0, 1.0)
        fleet = fleet + RewardSummary(count, total, total_sq, non_binary)
    return fleet


@pytest.mark.parametrize("kind", sorted(REALISTIC))
@pytest.mark.parametrize("n", [2, 3, 30, 1_000, 100_000])
def test_mean_and_variance_equal_numpy_for_realistic_rewards(kind: str, n: int) -> None:
    values = REALISTIC[kind](np.random.default_rng(RNG_SEED + n), n)
    for summary in (RewardSummary.from_values(values), counters_on_replicas(values, 3)):
        assert summary.count == n
        assert math.isclose(summary.mean() or 0.0, float(np.mean(values)), rel_tol=1e-9)
        assert math.isclose(summary.variance() or 0.0, float(np.var(values, ddof=1)), rel_tol=1e-9)
        assert summary.is_binary() is (kind == "binary")


@FAST
@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=80))
def test_variance_loses_no_more_than_the_documented_precision(values: list[float]) -> None:
    # Any floats, including a tiny spread around a large mean: the error stays within
    # a few ulps of the sum of squares (the docstring's bound), and is never negative.
    summary = RewardSummary.from_values(values)
    variance = summary.variance()
    assert variance is not None and variance >= 0.0
    scale = math.fsum(v * v for v in values) / (len(values) - 1)
    assert abs(variance - float(np.var(values, ddof=1))) <= 1e-14 * scale + 1e-300


@FAST
@given(st.lists(st.integers(0, 8_000).map(lambda v: v / 8), min_size=2, max_size=80))
def test_variance_equals_numpy_when_the_rewards_vary(values: list[float]) -> None:
    variance = RewardSummary.from_values(values).variance()
    expected = float(np.var(values, ddof=1))
    assert variance is not None
    assert math.isclose(variance, expected, rel_tol=1e-9, abs_tol=0.0) or expected == variance


@FAST
@given(
    st.lists(st.sampled_from([0.0, 1.0, 0.25, 7.0]), max_size=40),
    st.lists(st.sampled_from([0.0, 1.0, 0.5]), max_size=40),
)
def test_merged_summaries_are_the_summary_of_all_rewards(a: list[float], b: list[float]) -> None:
    merged = RewardSummary.from_values(a) + RewardSummary.from_values(b)
    whole = RewardSummary.from_values(a + b)
    assert merged == RewardSummary.from_values(a).merged(RewardSummary.from_values(b))
    assert (merged.count, merged.non_binary) == (whole.count, whole.non_binary)
    assert merged.total == pytest.approx(whole.total, rel=1e-15, abs=1e-12)
    assert merged.total_sq == pytest.approx(whole.total_sq, rel=1e-15, abs=1e-12)
    assert merged.is_binary() is all(v in (0.0, 1.0) for v in a + b)


def test_binary_means_every_reward_was_0_or_1() -> None:
    assert RewardSummary.from_values([0, 1, 1, 0.0, 1.0]).is_binary()
    assert RewardSummary.from_values([0, 1, 1]).successes() == 2
    mixed = RewardSummary.from_values([0, 1, 0.5, 2])
    assert (mixed.non_binary, mixed.is_binary()) == (2, False)


def test_too_few_rewards_have_no_mean_or_variance() -> None:
    assert RewardSummary().mean() is None
    assert RewardSummary().variance() is None
    one = RewardSummary.from_values([0.7])
    assert (one.mean(), one.variance()) == (0.7, None)


def test_equal_rewards_have_zero_variance_never_a_negative_one() -> None:
    # 0.1 is not a binary fraction: total**2 / n rounds above total_sq for these.
    for value, n in ((0.1, 3), (0.3, 7), (0.7, 10), (1e3 / 3, 3), (1e3 / 3, 7)):
        variance = RewardSummary.from_values([value] * n).variance()
        assert variance is not None and 0.0 <= variance <= 1e-15 * value * value


def test_a_window_is_the_rewards_counted_since_its_start() -> None:
    start = RewardSummary.from_values([1.0, 0.0, 2.0])
    end = start + RewardSummary.from_values([0.5, 1.0])
    assert end.since(start) == RewardSummary.from_values([0.5, 1.0])
    assert end.since(RewardSummary()) == end


def test_a_reset_counter_makes_the_window_the_new_snapshot() -> None:
    before_restart = RewardSummary.from_values([1.0] * 10)
    after_restart = RewardSummary.from_values([0.0, 1.0])
    assert after_restart.since(before_restart) == after_restart


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_reward_must_be_finite(bad: float) -> None:
    with pytest.raises(ValueError, match="finite number"):
        RewardSummary.from_values([1.0, bad])
