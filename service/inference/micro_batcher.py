"""Coalesce concurrent requests for one model version into batches, without waiting.

While a batch runs in a worker thread, new requests queue; when it ends, everything
queued (up to ``max_items``) becomes the next batch. A lone request therefore starts at
once (no timer, no added latency at low load), and under load the batch grows with the
concurrency, which is when it pays. One batch per version runs at a time: the work is
CPU-bound under the GIL, so more threads would only add switching.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import anyio.to_thread

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Queue(Generic[Item, Result]):
    waiting: deque[tuple[Item, asyncio.Future[Result]]] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


class MicroBatcher(Generic[Item, Result]):
    """``await submit(item)`` returns ``run([..., item, ...])``'s entry for that item."""

    def __init__(
        self,
        run: Callable[[list[Item]], Sequence[Result]],
        max_items: int,
        small: Callable[[list[Item]], bool] = lambda items: False,
        inline_max_s: float = 0.0,
    ) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self._run = run
        self.max_items = max_items
        self._small = small
        self._inline_max_s = inline_max_s
        self._typical_s: float | None = None  # moving average of a batch's run time
        # One queue per event loop (a worker has one; tests may run several in turn).
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = (
            weakref.WeakKeyDictionary()
        )

    async def submit(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _Queue()
        future: asyncio.Future[Result] = loop.create_future()
        queue.waiting.append((item, future))
        if queue.task is None:
            queue.task = loop.create_task(self._drain(queue))
        return await future

    def _runs_inline(self, items: list[Item]) -> bool:
        typical = self._typical_s
        return typical is not None and typical <= self._inline_max_s and self._small(items)

    def _timed_run(self, items: list[Item]) -> Sequence[Result]:
        started = time.perf_counter()
        try:
            return self._run(items)
        finally:
            elapsed = time.perf_counter() - started
            typical = self._typical_s
            self._typical_s = elapsed if typical is None else 0.8 * typical + 0.2 * elapsed

    async def _drain(self, queue: _Queue) -> None:
        try:
            while queue.waiting:
                batch = [
                    queue.waiting.popleft() for _ in range(min(self.max_items, len(queue.waiting)))
                ]
                batch = [(item, future) for item, future in batch if not future.done()]
                if not batch:
                    continue
                items = [item for item, _ in batch]
                try:
                    if self._runs_inline(items):
                        results = self._timed_run(items)
                    else:
                        results = await anyio.to_thread.run_sync(self._timed_run, items)
                except asyncio.CancelledError:
                    for _, future in batch:
                        future.cancel()
                    raise
                except Exception as exc:
                    _fail(batch, exc)
                    continue
                if len(results) != len(batch):
                    _fail(batch, RuntimeError(f"{len(results)} results for {len(batch)} items"))
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            queue.task = None
            while queue.waiting:  # only left behind when cancelled
                queue.waiting.popleft()[1].cancel()


def _fail(batch: list[tuple[object, asyncio.Future]], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
