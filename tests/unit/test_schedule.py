"""registry_watcher.schedule.PollSchedule: the interval, jittered after failures, never
backed off (deterministic rand where it matters)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry_watcher.schedule import PollSchedule

FAST = settings(max_examples=300, deadline=None, database=None, derandomize=True)


def test_healthy_polls_keep_the_exact_interval() -> None:
    schedule = PollSchedule(2.0, rand=lambda: 0.0)
    assert schedule.delay(0) == 2.0
    assert schedule.delay(-3) == 2.0


@pytest.mark.parametrize(("r", "expected"), [(0.0, 1.5), (0.5, 2.0), (1.0, 2.5)])
def test_failed_polls_are_jittered_around_the_interval(r: float, expected: float) -> None:
    assert PollSchedule(2.0, rand=lambda: r).delay(1) == pytest.approx(expected)


@FAST
@given(
    failures=st.integers(min_value=1, max_value=10**9),
    interval=st.floats(min_value=0.05, max_value=3600),
    jitter=st.floats(min_value=0.0, max_value=0.99),
    r=st.floats(min_value=0.0, max_value=1.0),
)
def test_never_backs_off_whatever_the_outage(
    failures: int, interval: float, jitter: float, r: float
) -> None:
    schedule = PollSchedule(interval, jitter, rand=lambda: r)
    delay = schedule.delay(failures)
    assert interval * (1 - jitter) - 1e-9 <= delay <= interval * (1 + jitter) + 1e-9
    assert delay == schedule.delay(1)  # the same however many failures


def test_mean_delay_is_one_interval_so_a_down_registry_gets_no_more_polls() -> None:
    import random

    rng = random.Random(7)
    schedule = PollSchedule(1.0, rand=rng.random)
    delays = [schedule.delay(5) for _ in range(20_000)]
    assert sum(delays) / len(delays) == pytest.approx(1.0, abs=0.01)


def test_longest_wait() -> None:
    assert PollSchedule(2.0, rand=lambda: 1.0).delay(1) == 2.5
    assert PollSchedule(2.0, jitter=0.0, rand=lambda: 1.0).delay(1) == 2.0


@pytest.mark.parametrize(
    ("interval", "jitter"), [(0.0, 0.25), (-1.0, 0.25), (1.0, 1.0), (1.0, -0.1)]
)
def test_bad_parameters_are_refused(interval: float, jitter: float) -> None:
    with pytest.raises(ValueError):
        PollSchedule(interval, jitter)
