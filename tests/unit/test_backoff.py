"""service.lifecycle.backoff: exponential backoff with full jitter (deterministic rand)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.lifecycle.backoff import ExponentialBackoff, backoff_delay

FAST = settings(max_examples=300, deadline=None, database=None, derandomize=True)


def low() -> float:
    return 0.0


def high() -> float:
    return 1.0


def mid() -> float:
    return 0.5


@pytest.mark.parametrize("failures", [0, -1, -100])
def test_no_failure_means_no_delay(failures: int) -> None:
    assert backoff_delay(failures, 1.0, 60.0, high) == 0.0
    assert backoff_delay(failures, 1.0, 60.0, low) == 0.0


@pytest.mark.parametrize(
    ("failures", "nominal"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 16.0), (6, 32.0), (7, 60.0), (8, 60.0)],
)
def test_bounds_per_failure_count(failures: int, nominal: float) -> None:
    assert backoff_delay(failures, 1.0, 60.0, low) == nominal / 2
    assert backoff_delay(failures, 1.0, 60.0, high) == nominal
    assert backoff_delay(failures, 1.0, 60.0, mid) == nominal * 0.75


def test_grows_exponentially_until_the_cap() -> None:
    delays = [backoff_delay(n, 0.25, 10.0, high) for n in range(1, 12)]
    assert delays[:6] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
    assert delays[6:] == [10.0] * 5
    assert delays == sorted(delays)


@pytest.mark.parametrize("failures", [31, 32, 64, 1000, 10**6, 10**100])
def test_very_large_failure_counts_do_not_overflow(failures: int) -> None:
    assert backoff_delay(failures, 1.0, 60.0, high) == 60.0
    assert backoff_delay(failures, 1.0, 60.0, low) == 30.0
    assert math.isfinite(backoff_delay(failures, 1e-9, 1e9, high))


def test_cap_below_base_caps_the_first_retry() -> None:
    assert backoff_delay(1, 10.0, 3.0, high) == 3.0
    assert backoff_delay(1, 10.0, 3.0, low) == 1.5


def test_default_rand_stays_within_bounds() -> None:
    for failures in range(1, 40):
        nominal = min(30.0, 0.5 * 2 ** (failures - 1))
        for _ in range(20):
            delay = backoff_delay(failures, 0.5, 30.0)
            assert nominal / 2 <= delay <= nominal


def test_jitter_spreads_retries() -> None:
    rng = random.Random(1234)
    delays = {backoff_delay(5, 1.0, 60.0, rng.random) for _ in range(50)}
    assert len(delays) > 40
    assert all(8.0 <= d <= 16.0 for d in delays)


@FAST
@given(
    failures=st.integers(min_value=1, max_value=10**9),
    base=st.floats(min_value=1e-4, max_value=100.0),
    cap=st.floats(min_value=1e-4, max_value=3600.0),
    r=st.floats(min_value=0.0, max_value=1.0),
)
def test_bounds_property(failures: int, base: float, cap: float, r: float) -> None:
    delay = backoff_delay(failures, base, cap, lambda: r)
    nominal = min(cap, base * 2 ** min(failures - 1, 30))
    assert math.isfinite(delay)
    assert delay <= cap
    assert nominal / 2 <= delay <= nominal
    assert (
        backoff_delay(failures, base, cap, low) <= delay <= backoff_delay(failures, base, cap, high)
    )


@FAST
@given(
    failures=st.integers(min_value=1, max_value=200),
    base=st.floats(min_value=1e-3, max_value=10.0),
    cap=st.floats(min_value=1e-3, max_value=600.0),
)
def test_monotonic_in_failures(failures: int, base: float, cap: float) -> None:
    assert backoff_delay(failures, base, cap, high) <= backoff_delay(failures + 1, base, cap, high)
    assert backoff_delay(failures, base, cap, low) <= backoff_delay(failures + 1, base, cap, low)


# --- ExponentialBackoff: the pool's retry policy -----------------------------------


@FAST
@given(
    failures=st.integers(-3, 60),
    base=st.floats(0.001, 100),
    cap=st.floats(0.001, 1000),
    r=st.floats(0.0, 1.0),
)
def test_the_policy_is_backoff_delay_with_its_settings(
    failures: int, base: float, cap: float, r: float
) -> None:
    policy = ExponentialBackoff(base, cap, rand=lambda: r)
    assert policy.delay(failures) == backoff_delay(failures, base, cap, lambda: r)


def test_policy_defaults() -> None:
    policy = ExponentialBackoff(rand=high)
    assert (policy.base_s, policy.cap_s) == (1.0, 60.0)
    assert [policy.delay(n) for n in (1, 2, 3, 7, 8)] == [1.0, 2.0, 4.0, 60.0, 60.0]


def test_policies_with_equal_settings_are_equal() -> None:
    assert ExponentialBackoff(2.0, 30.0, rand=low) == ExponentialBackoff(2.0, 30.0, rand=high)
    assert ExponentialBackoff(2.0, 30.0) != ExponentialBackoff(1.0, 30.0)
