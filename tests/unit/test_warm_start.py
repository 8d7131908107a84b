"""service.lifecycle.warm_start: a (re)started worker keeps off the socket while a sibling
serves."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.lifecycle.warm_start import WarmStartPolicy, hold_until_warm


class FakeWorker:
    """A worker whose state changes as the wait polls it: ``loaded_after`` and
    ``siblings_until`` count polls of ``is_loaded``."""

    def __init__(self, loaded_after: int | None, siblings: int = 1, siblings_until=None):
        self.polls = 0
        self.loaded_after = loaded_after
        self.siblings = siblings
        self.siblings_until = siblings_until
        self.standby_calls: list[bool] = []
        self.on_poll = lambda polls: None

    def is_loaded(self) -> bool:
        self.polls += 1
        self.on_poll(self.polls)
        return self.loaded_after is not None and self.polls > self.loaded_after

    def ready_siblings(self) -> int:
        if self.siblings_until is not None and self.polls > self.siblings_until:
            return 0
        return self.siblings

    def standby(self, waiting: bool) -> None:
        self.standby_calls.append(waiting)


def _run(worker: FakeWorker, timeout_s: float = 60.0, clock=None) -> str:
    kwargs = {"clock": clock} if clock else {}
    return asyncio.run(hold_until_warm(worker, WarmStartPolicy(timeout_s), 0.001, **kwargs))


def test_waits_off_the_socket_until_loaded_while_a_sibling_serves() -> None:
    worker = FakeWorker(loaded_after=5)
    assert _run(worker) == "loaded"
    assert worker.polls > 5
    assert worker.standby_calls == [True, False]


def test_a_cold_gateway_does_not_wait() -> None:
    """No worker ready (first start, registry down): take connections, report why."""
    worker = FakeWorker(loaded_after=None, siblings=0)
    assert _run(worker) == "not_needed"
    assert worker.standby_calls == []


def test_a_loaded_worker_does_not_wait() -> None:
    assert _run(FakeWorker(loaded_after=0)) == "not_needed"


def test_stops_waiting_when_the_last_ready_sibling_goes() -> None:
    worker = FakeWorker(loaded_after=None, siblings_until=3)
    assert _run(worker) == "no_ready_sibling"
    assert worker.standby_calls == [True, False]


def test_the_wait_is_bounded() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    worker = FakeWorker(loaded_after=None)
    assert _run(worker, timeout_s=10, clock=clock) == "timeout"
    assert worker.standby_calls == [True, False]


def test_timeout_zero_turns_waiting_off() -> None:
    assert _run(FakeWorker(loaded_after=None), timeout_s=0) == "not_needed"


def test_a_stop_signal_ends_the_wait_and_still_reaches_the_server() -> None:
    received: list[int] = []

    def server_handler(signum: int, frame: object) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGTERM, server_handler)
    try:
        worker = FakeWorker(loaded_after=None)
        worker.on_poll = lambda polls: polls == 3 and os.kill(os.getpid(), signal.SIGTERM)
        assert _run(worker) == "stopping"
        assert received == [signal.SIGTERM]  # the server's handler ran too
        assert worker.standby_calls == [True, False]
        assert signal.getsignal(signal.SIGTERM) is server_handler  # put back
    finally:
        signal.signal(signal.SIGTERM, previous)


@given(
    loaded=st.booleans(),
    siblings=st.integers(0, 3),
    waited=st.floats(0, 1000),
    timeout=st.floats(0, 1000),
    stopping=st.booleans(),
)
def test_policy_waits_only_when_every_condition_holds(
    loaded: bool, siblings: int, waited: float, timeout: float, stopping: bool
) -> None:
    wait = WarmStartPolicy(timeout).keep_waiting(
        loaded=loaded, ready_siblings=siblings, waited_s=waited, stopping=stopping
    )
    assert wait == (not loaded and siblings > 0 and waited < timeout and not stopping)


@pytest.mark.parametrize("siblings", [1, 2])
def test_any_ready_sibling_is_enough(siblings: int) -> None:
    assert WarmStartPolicy(5).keep_waiting(
        loaded=False, ready_siblings=siblings, waited_s=0, stopping=False
    )
