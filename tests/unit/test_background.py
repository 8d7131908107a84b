"""registry_watcher.background.BackgroundLoop: start, wait, wake, stop, and start again."""

from __future__ import annotations

import threading

import pytest

from registry_watcher.background import BackgroundLoop
from tests.integration.harness import wait_until


class Steps:
    """A step that counts its runs and waits as told."""

    def __init__(self, wait: float | None = None) -> None:
        self.wait = wait
        self.runs = 0
        self.threads: set[str] = set()
        self.ran = threading.Event()

    def __call__(self) -> float | None:
        self.runs += 1
        self.threads.add(threading.current_thread().name)
        self.ran.set()
        return self.wait


def ran_again(steps: Steps, after: int, timeout: float = 10.0) -> bool:
    return wait_until(lambda: steps.runs > after, timeout, interval=0.005)


@pytest.mark.timeout(30)
def test_start_runs_the_step_on_a_named_daemon_thread() -> None:
    steps = Steps()
    loop = BackgroundLoop("test-loop", steps)
    assert not loop.is_running
    loop.start()
    try:
        assert steps.ran.wait(10)
        assert steps.threads == {"test-loop"}
        assert loop.is_running
        loop.start()  # idempotent: still one thread
        assert [t.name for t in threading.enumerate()].count("test-loop") == 1
    finally:
        assert loop.stop(timeout=10)
    assert not loop.is_running


@pytest.mark.timeout(30)
def test_start_after_stop_runs_the_loop_again() -> None:
    steps = Steps()
    loop = BackgroundLoop("test-loop", steps)
    loop.start()
    assert steps.ran.wait(10)
    assert loop.stop(timeout=10)
    runs = steps.runs
    loop.start()
    try:
        loop.wake()
        assert ran_again(steps, runs), "the loop did not run after a restart"
        assert loop.is_running
    finally:
        assert loop.stop(timeout=10)


@pytest.mark.timeout(30)
def test_none_waits_until_woken() -> None:
    steps = Steps(wait=None)
    loop = BackgroundLoop("test-loop", steps)
    loop.start()
    try:
        assert steps.ran.wait(10)
        assert not ran_again(steps, 1, timeout=0.3), "ran again without a wake"
        loop.wake()
        assert ran_again(steps, 1)
    finally:
        loop.stop(timeout=10)


@pytest.mark.timeout(30)
def test_a_number_is_the_wait_before_the_next_step() -> None:
    steps = Steps(wait=0.01)
    loop = BackgroundLoop("test-loop", steps)
    loop.start()
    try:
        assert ran_again(steps, 3)
    finally:
        loop.stop(timeout=10)


@pytest.mark.timeout(30)
def test_a_wake_during_the_step_is_kept() -> None:
    """A wake while the step runs makes it run again at once, not after the wait."""
    entered = threading.Event()
    release = threading.Event()
    runs: list[int] = []

    def step() -> float | None:
        runs.append(1)
        if len(runs) == 1:
            entered.set()
            assert release.wait(10)
        return None  # wait until woken

    loop = BackgroundLoop("test-loop", step)
    loop.start()
    try:
        assert entered.wait(10)
        loop.wake()  # during the first step
        release.set()
        assert wait_until(lambda: len(runs) >= 2, 10, interval=0.005)
    finally:
        loop.stop(timeout=10)


@pytest.mark.timeout(30)
def test_stop_cuts_a_wait_short() -> None:
    steps = Steps(wait=3600.0)
    loop = BackgroundLoop("test-loop", steps)
    loop.start()
    assert steps.ran.wait(10)
    assert loop.stop(timeout=5), "stop() did not end a long wait"
    assert steps.runs == 1


@pytest.mark.timeout(30)
def test_a_raising_step_does_not_kill_the_thread() -> None:
    errors: list[Exception] = []
    runs: list[int] = []

    def step() -> float | None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("boom")
        return None

    def on_error(exc: Exception) -> float:
        errors.append(exc)
        return 0.0

    loop = BackgroundLoop("test-loop", step, on_error)
    loop.start()
    try:
        assert wait_until(lambda: len(runs) >= 2, 10, interval=0.005)
        assert [str(e) for e in errors] == ["boom"]
        assert loop.is_running
    finally:
        loop.stop(timeout=10)


def test_stop_and_wake_before_start_do_nothing() -> None:
    loop = BackgroundLoop("test-loop", Steps())
    loop.wake()
    assert loop.stop(timeout=1)
    assert not loop.is_running


@pytest.mark.timeout(30)
def test_stop_from_the_step_itself_does_not_deadlock() -> None:
    loop: BackgroundLoop
    stopped = threading.Event()

    def step() -> float | None:
        loop.stop(timeout=1)
        stopped.set()
        return 0.0

    loop = BackgroundLoop("test-loop", step)
    loop.start()
    assert stopped.wait(10)
    assert wait_until(lambda: not loop.is_running, 10, interval=0.005)
