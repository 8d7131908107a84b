"""This worker's readiness, and the whole gateway's: the pool's required targets and
the other workers' markers on the readiness board (service/ops/readiness_board.py).

Also what service/lifecycle/warm_start.py asks while a (re)started worker keeps off
the socket, and the marker this worker posts: withdrawn for good once it stops.
"""

from __future__ import annotations

import threading
from typing import Protocol

from registry_watcher.redact import redact


class PoolReadiness(Protocol):
    def is_ready(self) -> bool: ...

    def unready_reasons(self) -> list[str]: ...


class Board(Protocol):
    """The markers the workers post (service/ops/readiness_board.py's ReadinessBoard)."""

    def publish(self, ready: bool) -> None: ...

    def standby(self, waiting: bool) -> None: ...

    def other_ready_workers(self) -> int: ...

    def unready_reason(self) -> str | None: ...


class WorkerReadiness:
    def __init__(self, pool: PoolReadiness, board: Board) -> None:
        self._pool = pool
        self._board = board
        self._lock = threading.Lock()
        self._stopping = False

    def publish(self) -> None:
        """Post this worker's marker as it is now (pool thread and watcher thread)."""
        with self._lock:
            self._board.publish(self._pool.is_ready() and not self._stopping)

    def withdraw(self) -> None:
        """The worker stops: take its marker down; no later poll or swap posts it again."""
        with self._lock:
            self._stopping = True
            self._board.publish(False)

    def is_loaded(self) -> bool:
        """Whether this worker has its required targets loaded."""
        return self._pool.is_ready()

    def ready_siblings(self) -> int:
        return self._board.other_ready_workers()

    def standby(self, waiting: bool) -> None:
        self._board.standby(waiting)

    def is_ready(self) -> bool:
        """Ready when this worker and every other worker of the gateway are."""
        return self._pool.is_ready() and self._board.unready_reason() is None

    def unready_reasons(self) -> list[str]:
        reasons = self._pool.unready_reasons()
        if not reasons:
            workers = self._board.unready_reason()
            if workers is not None:
                reasons = [workers]
        return [redact(reason) for reason in reasons]  # load errors quote artifact URLs
