"""histogram_quantile as Prometheus computes it (promql/quantile.go)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from service.experiments.latency_quantiles import histogram_quantile

FAST = settings(max_examples=300, deadline=None, database=None, derandomize=True)
INF = math.inf
# 10 in (0, 0.1], 20 in (0.1, 0.5], 10 in (0.5, 1], none above.
HAND = {0.1: 10.0, 0.5: 30.0, 1.0: 40.0, INF: 40.0}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.5, 0.1 + 0.4 * (10 / 20)),  # rank 20: 10 into (0.1, 0.5]'s 20
        (0.25, 0.1),  # rank 10: the top of the lowest bucket, which starts at 0
        (0.1, 0.1 * (4 / 10)),
        (0.99, 0.5 + 0.5 * (9.6 / 10)),
        (1.0, 1.0),
        (0.0, 0.0),
    ],
)
def test_interpolates_linearly_within_the_bucket(q: float, expected: float) -> None:
    assert histogram_quantile(q, HAND) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_the_bucket_order_given_does_not_matter() -> None:
    shuffled = {INF: 40.0, 1.0: 40.0, 0.1: 10.0, 0.5: 30.0}
    assert histogram_quantile(0.5, shuffled) == histogram_quantile(0.5, HAND)


def test_a_quantile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    assert histogram_quantile(0.5, {0.1: 1.0, 1.0: 2.0, INF: 10.0}) == 1.0
    assert histogram_quantile(0.99, {0.25: 0.0, INF: 3.0}) == 0.25


def test_a_lowest_bucket_at_or_below_zero_answers_its_bound() -> None:
    assert histogram_quantile(0.25, {-1.0: 5.0, 0.0: 10.0, INF: 10.0}) == -1.0
    assert histogram_quantile(0.25, {0.0: 5.0, 1.0: 10.0, INF: 10.0}) == 0.0
    # Past the lowest bucket, interpolation starts at its bound.
    assert histogram_quantile(0.75, {-1.0: 5.0, 0.0: 10.0, INF: 10.0}) == pytest.approx(-0.5)


@pytest.mark.parametrize(
    "buckets",
    [
        {},  # nothing
        {0.1: 0.0, 1.0: 0.0, INF: 0.0},  # no observations
        {0.1: 1.0, 1.0: 2.0},  # no +Inf bucket
        {INF: 5.0},  # fewer than 2 buckets
    ],
)
def test_what_prometheus_answers_nan_is_none(buckets: dict[float, float]) -> None:
    assert histogram_quantile(0.5, buckets) is None


def test_q_outside_0_1_is_infinite_and_nan_is_none() -> None:
    assert histogram_quantile(-0.1, HAND) == -INF
    assert histogram_quantile(1.1, HAND) == INF
    assert histogram_quantile(math.nan, HAND) is None


def test_q_0_over_an_empty_lowest_bucket_is_none_as_prometheus_0_over_0() -> None:
    assert histogram_quantile(0.0, {0.1: 0.0, 1.0: 4.0, INF: 4.0}) is None


def test_counts_are_made_monotonic_first() -> None:
    # A bucket below its neighbour (inconsistent sums) is raised to it: 0.5 counts 10.
    broken = {0.1: 10.0, 0.5: 8.0, 1.0: 20.0, INF: 20.0}
    assert histogram_quantile(0.75, broken) == pytest.approx(0.5 + 0.5 * (5 / 10))


def test_float_noise_between_neighbouring_counts_is_ignored() -> None:
    # Summed rates differ by 1e-15 relative: Prometheus treats them as one count, so the
    # maximum stays in the lowest bucket instead of the top of a sliver of (0.1, 0.5].
    noise = 10.0 * (1 + 1e-15)
    noisy = {0.1: 10.0, 0.5: noise, 1.0: noise, INF: noise}
    assert histogram_quantile(1.0, noisy) == pytest.approx(0.1)
    assert histogram_quantile(1.0, {0.1: 10.0, 0.5: 10.1, INF: 10.1}) == pytest.approx(0.5)


def test_the_buckets_prometheus_client_exposes_are_the_input() -> None:
    registry = CollectorRegistry()
    latency = Histogram("latency_seconds", "test", buckets=(0.1, 0.5, 1.0), registry=registry)
    for seconds in [0.05] * 10 + [0.3] * 20 + [0.7] * 10:
        latency.observe(seconds)
    samples = registry.collect().__next__().samples
    buckets = {float(s.labels["le"]): s.value for s in samples if s.name.endswith("_bucket")}
    assert buckets == HAND
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.3)


BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def cumulative(per_bucket: list[int]) -> dict[float, float]:
    running, buckets = 0, {}
    for bound, count in zip((*BOUNDS, INF), per_bucket, strict=True):
        running += count
        buckets[bound] = float(running)
    return buckets


PER_BUCKET = st.lists(st.integers(0, 50), min_size=11, max_size=11).filter(any)


@FAST
@given(PER_BUCKET, st.floats(0, 1), st.floats(0, 1))
def test_quantiles_grow_with_q_and_stay_in_the_rank_s_bucket(
    per_bucket: list[int], q1: float, q2: float
) -> None:
    buckets = cumulative(per_bucket)
    low, high = sorted((q1, q2))
    a, b = histogram_quantile(low, buckets), histogram_quantile(high, buckets)
    if a is None:  # q = 0 over an empty lowest bucket
        assert low == 0 and per_bucket[0] == 0
        return
    assert b is not None and 0.0 <= a <= b + 1e-12 <= BOUNDS[-1] + 1e-12
    # The answer lies in the first bucket whose cumulative count reaches the rank.
    rank, counts = high * sum(per_bucket), list(buckets.values())
    i = next(i for i, c in enumerate(counts) if c >= rank)
    lower = 0.0 if i == 0 else BOUNDS[i - 1]
    upper = BOUNDS[min(i, len(BOUNDS) - 1)]
    assert lower - 1e-12 <= b <= upper + 1e-12
