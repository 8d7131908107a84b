"""service.inference.micro_batcher.MicroBatcher: no waiting when alone, coalescing under
load, failures delivered to exactly the requests they concern."""

from __future__ import annotations

import asyncio
import threading

import pytest

from service.inference.micro_batcher import MicroBatcher


class Recorder:
    """A run function that records its batches and can be held while one runs."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.running = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        self.running.set()
        self.release.wait(10)
        return [item * 10 for item in items]


async def _wait_for(event: threading.Event) -> None:
    while not event.is_set():
        await asyncio.sleep(0.001)


def test_a_lone_request_runs_at_once() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_items=8)
    assert asyncio.run(batcher.submit(3)) == 30
    assert recorder.batches == [[3]]


def test_requests_arriving_during_a_batch_form_the_next_one() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_items=8)

    async def main() -> list[int]:
        recorder.release.clear()
        first = asyncio.ensure_future(batcher.submit(1))
        await _wait_for(recorder.running)  # batch [1] is running and held
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(2, 7)]
        await asyncio.sleep(0)  # one loop turn: every task reaches submit()
        recorder.release.set()
        return await asyncio.gather(first, *rest)

    assert asyncio.run(main()) == [10, 20, 30, 40, 50, 60]
    assert recorder.batches == [[1], [2, 3, 4, 5, 6]]


def test_batches_never_exceed_max_items() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_items=3)

    async def main() -> list[int]:
        recorder.release.clear()
        first = asyncio.ensure_future(batcher.submit(0))
        await _wait_for(recorder.running)
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 8)]
        await asyncio.sleep(0)  # one loop turn: every task reaches submit()
        recorder.release.set()
        return await asyncio.gather(first, *rest)

    assert asyncio.run(main()) == [i * 10 for i in range(8)]
    assert recorder.batches == [[0], [1, 2, 3], [4, 5, 6], [7]]


def test_a_failing_batch_fails_its_requests_only_and_the_batcher_goes_on() -> None:
    calls: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        calls.append(items)
        if 13 in items:
            raise RuntimeError("unlucky")
        return items

    batcher = MicroBatcher(run, max_items=1)

    async def main() -> list[object]:
        return await asyncio.gather(
            batcher.submit(1), batcher.submit(13), batcher.submit(2), return_exceptions=True
        )

    one, unlucky, two = asyncio.run(main())
    assert (one, two) == (1, 2)
    assert isinstance(unlucky, RuntimeError)


def test_a_wrong_number_of_results_is_an_error_not_a_hang() -> None:
    batcher = MicroBatcher(lambda items: [], max_items=4)
    with pytest.raises(RuntimeError, match="0 results for 1 items"):
        asyncio.run(asyncio.wait_for(batcher.submit(1), 5))


def test_a_cancelled_request_does_not_disturb_the_others() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_items=8)

    async def main() -> list[int]:
        recorder.release.clear()
        first = asyncio.ensure_future(batcher.submit(1))
        await _wait_for(recorder.running)
        doomed = asyncio.ensure_future(batcher.submit(2))
        kept = asyncio.ensure_future(batcher.submit(3))
        await asyncio.sleep(0)  # one loop turn: every task reaches submit()
        doomed.cancel()
        recorder.release.set()
        return await asyncio.gather(first, kept)

    assert asyncio.run(main()) == [10, 30]
    assert recorder.batches == [[1], [3]]


def test_each_event_loop_gets_its_own_queue() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_items=8)
    assert asyncio.run(batcher.submit(1)) == 10
    assert asyncio.run(batcher.submit(2)) == 20  # a new loop: no stale state


def test_max_items_must_be_positive() -> None:
    with pytest.raises(ValueError):
        MicroBatcher(lambda items: items, max_items=0)


def test_small_quick_batches_run_on_the_event_loop_thread() -> None:
    threads: list[int] = []

    def run(items: list[int]) -> list[int]:
        threads.append(threading.get_ident())
        return items

    batcher = MicroBatcher(run, max_items=8, small=lambda items: True, inline_max_s=1.0)

    async def main() -> int:
        await batcher.submit(1)  # no timing known yet: a worker thread
        await batcher.submit(2)  # known quick and small: inline
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert threads[0] != loop_thread
    assert threads[1] == loop_thread


def test_large_or_slow_batches_stay_off_the_event_loop() -> None:
    threads: list[int] = []

    def run(items: list[int]) -> list[int]:
        threads.append(threading.get_ident())
        return items

    big = MicroBatcher(run, max_items=8, small=lambda items: False, inline_max_s=1.0)
    slow = MicroBatcher(run, max_items=8, small=lambda items: True, inline_max_s=0.0)

    async def main() -> int:
        for batcher in (big, slow):
            await batcher.submit(1)
            await batcher.submit(2)
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert loop_thread not in threads
