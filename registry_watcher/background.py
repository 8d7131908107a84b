"""One background thread that runs a step, waits, and runs it again until stopped.

The registry watcher, the model pool and the shadow mirror each run such a loop. The
step returns how long to wait before it runs again: ``0`` for at once, a number of
seconds, or ``None`` for until ``wake()``. ``wake()`` cuts a wait short; a wake that
comes while the step runs is kept, so the step runs again at once rather than missing
it. ``stop()`` ends the loop after the step in hand, and ``start()`` after ``stop()``
runs it again: each run has its own stop signal, so a stopped run can never stop
(or be confused with) the next one.

It lives in registry_watcher/ because that package must not import service/, and
service/ may import it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("stageserve.background")

Step = Callable[[], float | None]
# Called with what the step raised; returns the wait before the next step.
OnError = Callable[[Exception], float | None]

DEFAULT_ERROR_WAIT_S = 1.0


def log_and_pause(exc: Exception) -> float:
    """The default ``on_error``: log the failure, try again after a second."""
    log.error("background step failed", exc_info=exc)
    return DEFAULT_ERROR_WAIT_S


@dataclass
class _Run:
    """One start-to-stop run of the loop: its thread and its own signals."""

    thread: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)


class BackgroundLoop:
    """``step`` on a daemon thread named ``name``, from ``start()`` to ``stop()``."""

    def __init__(self, name: str, step: Step, on_error: OnError = log_and_pause) -> None:
        self._name = name
        self._step = step
        self._on_error = on_error
        self._lock = threading.Lock()
        self._run: _Run | None = None

    @property
    def is_running(self) -> bool:
        """Started, not stopped, and its thread alive."""
        run = self._run
        return run is not None and run.thread is not None and run.thread.is_alive()

    def start(self) -> None:
        """Start the loop (again, after a ``stop()``); does nothing while it runs."""
        with self._lock:
            if self._run is not None:
                return
            run = _Run()
            run.thread = threading.Thread(
                target=self._loop, args=(run,), name=self._name, daemon=True
            )
            self._run = run
            run.thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop after the step in hand, waiting at most ``timeout`` for it; whether the
        thread has ended."""
        with self._lock:
            run, self._run = self._run, None
        if run is None or run.thread is None:
            return True
        run.stop.set()
        run.wake.set()
        if run.thread is not threading.current_thread():
            run.thread.join(timeout)
        return not run.thread.is_alive()

    def wake(self) -> None:
        """Run the step now rather than at the end of the current wait."""
        run = self._run
        if run is not None:
            run.wake.set()

    def _loop(self, run: _Run) -> None:
        while not run.stop.is_set():
            run.wake.clear()  # before the step: a wake from now on is kept
            try:
                wait = self._step()
            except Exception as exc:  # never let the thread die
                wait = self._on_error(exc)
            if wait == 0:
                continue
            run.wake.wait(wait)
