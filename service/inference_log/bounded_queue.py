"""A queue bounded by items and by bytes that never blocks the one who offers.

The request path offers rows; a background thread takes them in batches. An offer that
does not fit (too many items, or too many bytes held) is refused at once and the caller
counts it: the shadow mirror's rule (service/traffic/shadow.py), here for any item with
a size. Once closed, every offer is refused (the taker drains what was accepted).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

Item = TypeVar("Item")

ACCEPTED = "accepted"
FULL = "queue_full"
CLOSED = "stopped"


class BoundedQueue(Generic[Item]):
    def __init__(self, max_items: int, max_bytes: int) -> None:
        if max_items < 1 or max_bytes < 1:
            raise ValueError("a bounded queue holds at least one item and one byte")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: deque[tuple[Item, int]] = deque()
        self._bytes = 0
        self._closed = False
        self._lock = threading.Lock()

    def offer(self, item: Item, size: int) -> str:
        """ACCEPTED, FULL or CLOSED; never waits beyond a short lock."""
        with self._lock:
            if self._closed:
                return CLOSED
            if len(self._items) >= self.max_items or self._bytes + size > self.max_bytes:
                return FULL
            self._items.append((item, size))
            self._bytes += size
            return ACCEPTED

    def take(self, max_items: int | None = None) -> list[Item]:
        """The oldest items, at most ``max_items`` (default all), removed."""
        with self._lock:
            count = len(self._items) if max_items is None else min(max_items, len(self._items))
            taken = [self._items.popleft() for _ in range(count)]
            self._bytes -= sum(size for _, size in taken)
        return [item for item, _ in taken]

    def close(self) -> None:
        """Refuse every offer from now on; what is queued stays to be taken."""
        with self._lock:
            self._closed = True

    def __len__(self) -> int:
        return len(self._items)

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def more_than_half_full(self) -> bool:
        """Worth waking the taker for now rather than at its next round."""
        return len(self._items) * 2 >= self.max_items or self._bytes * 2 >= self.max_bytes
