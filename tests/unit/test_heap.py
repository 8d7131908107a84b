"""service.lifecycle.heap.settle: collects what is garbage, freezes what is alive."""

from __future__ import annotations

import gc
import weakref

from service.lifecycle import heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_settle_collects_cycles_and_freezes_survivors() -> None:
    try:
        garbage = Node()
        alive = Node()
        gone = weakref.ref(garbage)
        del garbage
        heap.settle()
        assert gone() is None
        assert gc.get_freeze_count() > 0
        # a frozen cycle that becomes garbage is collected at the next settle
        still = weakref.ref(alive)
        del alive
        gc.collect()
        assert still() is not None  # frozen: a normal collection leaves it
        heap.settle()
        assert still() is None
    finally:
        gc.unfreeze()
