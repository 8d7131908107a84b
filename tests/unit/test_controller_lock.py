"""service/rollouts/embedded.py: one worker of a gateway holds controller.lock."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from service.rollouts.embedded import LOCK_FILE, ControllerLock


def _try(path: str, answer: multiprocessing.Queue) -> None:
    answer.put(ControllerLock(path).try_acquire())


def other_worker_gets_it(path: str) -> bool:
    answer: multiprocessing.Queue = multiprocessing.Queue()
    worker = multiprocessing.get_context("fork").Process(target=_try, args=(path, answer))
    worker.start()
    worker.join(30)
    return bool(answer.get(timeout=5))


def test_one_worker_holds_the_lock_until_it_lets_go(tmp_path: Path) -> None:
    path = str(tmp_path / LOCK_FILE)
    lock = ControllerLock(path)
    assert lock.try_acquire() and lock.try_acquire() and lock.held
    assert not other_worker_gets_it(path)
    lock.release()
    assert not lock.held
    assert other_worker_gets_it(path)
