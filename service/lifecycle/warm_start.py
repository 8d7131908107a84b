"""A replacement worker loads its models before it takes connections.

All workers accept connections on one shared listening socket, and a worker starts
accepting once its ASGI lifespan startup is over (uvicorn's ``Server.startup`` awaits the
lifespan, which BentoML uses to build the service and run its ``on_startup`` hooks, and
only then calls ``loop.create_server`` on the socket). A worker respawned after a crash
would otherwise take its share of new connections seconds before its model is loaded
and answer them 503, while the worker that survived could have served them.

So the service's startup hook waits, without blocking the event loop, while

- this worker's required targets are not loaded yet, and
- another live worker of the gateway is ready (it serves everything meanwhile), and
- the wait is shorter than ``STAGESERVE_WORKER_READY_TIMEOUT``, and
- the worker was not asked to stop.

A gateway starting cold has no ready worker: nobody waits, every worker accepts at once
and ``/ping`` answers 503 with the reasons (a registry that is down, a model missing).
While a worker waits it posts a standby marker, so the ready worker keeps answering
``/ping`` 200: the gateway refuses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any, Protocol

log = logging.getLogger("stageserve.warm_start")

# What signal.signal takes and returns: a function, SIG_DFL / SIG_IGN, or None (a
# handler not installed from Python).
SignalHandler = Callable[[int, FrameType | None], Any] | int | None


@dataclass(frozen=True)
class WarmStartPolicy:
    """When a starting worker keeps off the socket; ``timeout_s`` 0 turns waiting off."""

    timeout_s: float

    def keep_waiting(
        self, *, loaded: bool, ready_siblings: int, waited_s: float, stopping: bool
    ) -> bool:
        return not loaded and ready_siblings > 0 and waited_s < self.timeout_s and not stopping


class WorkerView(Protocol):
    """What the wait needs of a worker's gateway."""

    def is_loaded(self) -> bool: ...

    def ready_siblings(self) -> int: ...

    def standby(self, waiting: bool) -> None: ...


async def hold_until_warm(
    worker: WorkerView,
    policy: WarmStartPolicy,
    interval_s: float = 0.05,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Wait as the policy says; returns why the wait ended (for the log and tests):
    ``not_needed``, ``loaded``, ``no_ready_sibling``, ``timeout`` or ``stopping``."""
    started = clock()
    with _stop_requests() as stopping:

        def waiting() -> bool:
            return policy.keep_waiting(
                loaded=worker.is_loaded(),
                ready_siblings=worker.ready_siblings(),
                waited_s=clock() - started,
                stopping=stopping.is_set(),
            )

        if not waiting():
            return "not_needed"
        log.info(
            "another worker is serving: loading the required targets before taking "
            "connections (at most %.0f s)",
            policy.timeout_s,
        )
        worker.standby(True)
        try:
            while waiting():
                await asyncio.sleep(interval_s)
        finally:
            worker.standby(False)
        waited = clock() - started
        if stopping.is_set():
            outcome = "stopping"
        elif worker.is_loaded():
            outcome = "loaded"
        elif worker.ready_siblings() == 0:
            outcome = "no_ready_sibling"
        else:
            outcome = "timeout"
    if outcome == "timeout":
        log.warning(
            "required targets still not loaded after %.1f s "
            "(STAGESERVE_WORKER_READY_TIMEOUT): taking connections anyway",
            waited,
        )
    else:
        log.info("took connections after %.1f s off the socket (%s)", waited, outcome)
    return outcome


@contextlib.contextmanager
def _stop_requests() -> Iterator[threading.Event]:
    """An event set when SIGTERM or SIGINT arrives while the block runs. The handler
    that was there (the server's) still runs: it records that the server must exit once
    startup is over, which only the end of the wait lets happen."""
    event = threading.Event()
    previous: dict[signal.Signals, SignalHandler] = {}
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        event.set()
        received.append(signum)
        chained = previous.get(signal.Signals(signum))
        if callable(chained):
            chained(signum, frame)

    try:
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            previous[stop_signal] = signal.signal(stop_signal, handler)
    except ValueError:  # not the main thread: no signal handlers to chain
        pass
    try:
        yield event
    finally:
        for stop_signal, chained in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(stop_signal, chained)
        for signum in dict.fromkeys(received):
            if previous.get(signal.Signals(signum)) == signal.SIG_DFL:
                signal.raise_signal(signum)  # nobody else handles it: the default action
