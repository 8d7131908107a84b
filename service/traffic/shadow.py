"""Shadow (mirror) traffic: replay a share of requests on another target, compare, forget.

The primary answer is computed and sent first; the mirror is a job on a bounded queue,
run by one background thread, so a slow or broken shadow model can never delay or fail
the answer a client gets. The queue is bounded by count and by bytes (bodies can be
50 MiB each): a job that does not fit is dropped and counted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from registry_watcher.background import BackgroundLoop

log = logging.getLogger("stageserve.shadow")

AGREE = "agree"
DISAGREE = "disagree"
ERROR = "error"
DROPPED = "dropped"


@dataclass(frozen=True)
class Tolerance:
    """Numbers agree when ``|a - b| <= atol + rtol * |b|`` (numpy.isclose's rule)."""

    rtol: float = 1e-3
    atol: float = 1e-6


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def predictions_agree(primary: Any, shadow: Any, tolerance: Tolerance = Tolerance()) -> bool:
    """Structural comparison of two decoded prediction payloads.

    Labels (strings, booleans, None) must be equal; numbers must be within the
    tolerance; lists and objects must have the same shape and agree element-wise.
    """
    if _is_number(primary) and _is_number(shadow):
        a, b = float(primary), float(shadow)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= tolerance.atol + tolerance.rtol * abs(b)
    if isinstance(primary, list) and isinstance(shadow, list):
        return len(primary) == len(shadow) and all(
            predictions_agree(p, s, tolerance) for p, s in zip(primary, shadow, strict=True)
        )
    if isinstance(primary, dict) and isinstance(shadow, dict):
        return primary.keys() == shadow.keys() and all(
            predictions_agree(primary[k], shadow[k], tolerance) for k in primary
        )
    return type(primary) is type(shadow) and primary == shadow


def compare_payloads(primary: bytes, shadow: bytes, tolerance: Tolerance = Tolerance()) -> str:
    """AGREE or DISAGREE for two JSON answer bodies."""
    return (
        AGREE if predictions_agree(json.loads(primary), json.loads(shadow), tolerance) else DISAGREE
    )


DEFAULT_MAX_QUEUE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ShadowJob:
    model: str
    primary_target: str
    shadow_target: str
    body: bytes
    content_type: str | None
    primary_answer: bytes
    # The event loop that answered the primary: the shadow request is answered through
    # the shadow version's batcher on that loop, never beside it (see ShadowLeg.run in
    # service/request_path.py).
    loop: asyncio.AbstractEventLoop | None = field(default=None, compare=False, repr=False)

    @property
    def size(self) -> int:
        """Bytes the job holds while it waits: what the queue's byte budget counts."""
        return len(self.body) + len(self.primary_answer)


class ShadowMirror:
    """Runs shadow jobs off the request path.

    ``run_job`` returns the shadow's answer body (or raises); ``record`` receives
    (job, outcome) for every job, dropped ones included. At most ``max_queue`` jobs
    holding at most ``max_bytes`` (the job in hand included) are kept.
    """

    def __init__(
        self,
        run_job: Callable[[ShadowJob], bytes],
        record: Callable[[ShadowJob, str], None],
        tolerance: Tolerance = Tolerance(),
        max_queue: int = 256,
        max_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
    ) -> None:
        self._run_job = run_job
        self._record = record
        self._tolerance = tolerance
        self._queue: queue.Queue[ShadowJob] = queue.Queue(maxsize=max_queue)
        self._max_bytes = max_bytes
        self._held_bytes = 0  # of queued jobs and the one in hand
        self._bytes_lock = threading.Lock()
        self._loop = BackgroundLoop("shadow-mirror", self._run_next)

    @property
    def held_bytes(self) -> int:
        return self._held_bytes

    def submit(self, job: ShadowJob) -> bool:
        """Queue a job without ever blocking; False (and counted) when it does not fit."""
        size = job.size
        with self._bytes_lock:
            fits = self._held_bytes + size <= self._max_bytes
            if fits:
                try:
                    self._queue.put_nowait(job)
                except queue.Full:
                    fits = False
                else:
                    self._held_bytes += size
        if fits:
            self._loop.wake()
        else:
            self._record(job, DROPPED)
        return fits

    def run_one(self, job: ShadowJob) -> str:
        try:
            answer = self._run_job(job)
            outcome = compare_payloads(job.primary_answer, answer, self._tolerance)
        except Exception as exc:
            log.debug("shadow request to %s %s failed: %s", job.model, job.shadow_target, exc)
            outcome = ERROR
        self._record(job, outcome)
        return outcome

    def _run_queued(self, job: ShadowJob) -> None:
        try:
            self.run_one(job)
        finally:
            with self._bytes_lock:
                self._held_bytes -= job.size

    def _run_next(self) -> float | None:
        """Run the oldest queued job, if any; the background loop's step (it waits for
        the next ``submit`` when the queue is empty)."""
        try:
            job = self._queue.get_nowait()
        except queue.Empty:
            return None
        self._run_queued(job)
        return 0.0

    def drain(self) -> None:
        """Run every queued job now, in this thread (tests and shutdown)."""
        while self._run_next() is not None:
            pass

    def start(self) -> None:
        self._loop.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the job in hand; queued shadow jobs are abandoned (never awaited)."""
        self._loop.stop(timeout)
