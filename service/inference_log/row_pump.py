"""Rows from the request path to one destination: a bounded queue and a background
thread, and a stop that hands over everything accepted within a deadline.

``offer`` never blocks: a row that does not fit, or comes after the stop began, is
dropped and counted (``queue_full``, ``stopped``). The thread hands rows to the
destination's ``RowHandler`` in batches: at once when the pump is eager (the sink: each
row as it comes), else every ``interval_s`` or when the queue is half full (the files:
fewer, larger row groups). ``stop`` refuses new rows, waits for the batch in hand, then
hands over what is queued in the stopping thread and lets the handler finish (close its
files), all within its timeout; rows still queued then are counted as ``stopped``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from registry_watcher.background import BackgroundLoop
from service.inference_log.bounded_queue import ACCEPTED, CLOSED, BoundedQueue
from service.inference_log.log_counts import LogCounts
from service.inference_log.records import Row

log = logging.getLogger("stageserve.inference_log")


class RowHandler(Protocol):
    def handle(self, rows: list[Row]) -> None:
        """Deliver rows; counts its own successes and failures, never raises."""

    def idle(self) -> float | None:
        """Housekeeping between batches (rotation); seconds until it is wanted again."""

    def finish(self) -> None:
        """After the last rows, at stop (close files, connections)."""


class RowPump:
    def __init__(
        self,
        name: str,
        destination: str,
        handler: RowHandler,
        queue: BoundedQueue[Row],
        counts: LogCounts,
        batch_rows: int,
        interval_s: float | None,  # None: eager, each row handed over as it comes
    ) -> None:
        self.destination = destination
        self._handler = handler
        self._queue = queue
        self._counts = counts
        self._batch_rows = batch_rows
        self._interval_s = interval_s
        self._io = threading.Lock()  # the handler is used by one thread at a time
        self._loop = BackgroundLoop(name, self._step)

    def offer(self, row: Row) -> bool:
        """Queue a row without blocking; False (and counted) when it is dropped."""
        outcome = self._queue.offer(row, row.size)
        if outcome != ACCEPTED:
            self._counts.dropped(self.destination, outcome, 1)
            return False
        if self._interval_s is None or self._queue.more_than_half_full():
            self._loop.wake()
        return True

    def start(self) -> None:
        self._loop.start()

    def stop(self, timeout_s: float) -> bool:
        """Hand over every accepted row and finish, within ``timeout_s``; whether all
        of it was done."""
        deadline = time.monotonic() + timeout_s
        self._queue.close()
        self._loop.stop(timeout_s)
        done = False
        if self._io.acquire(timeout=max(0.0, deadline - time.monotonic())):
            try:
                while len(self._queue) and time.monotonic() < deadline:
                    self._handler.handle(self._queue.take(self._batch_rows))
                self._handler.finish()
                done = not len(self._queue)
            finally:
                self._io.release()
        left = len(self._queue.take())
        if left:
            self._counts.dropped(self.destination, CLOSED, left)
            log.warning(
                "inference log: %d rows for the %s not delivered at stop", left, self.destination
            )
        return done

    def _step(self) -> float | None:
        with self._io:
            rows = self._queue.take(self._batch_rows)
            if rows:
                self._handler.handle(rows)
            due = self._handler.idle()
        if len(self._queue) and (self._interval_s is None or len(self._queue) >= self._batch_rows):
            return 0.0
        waits = [w for w in (self._interval_s, due) if w is not None]
        return min(waits) if waits else None
