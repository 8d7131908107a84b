"""When the pool retries a failed load: the pool's retry policy. (Registry polls do not
back off: see registry_watcher/schedule.py.)"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


def backoff_delay(
    failures: int,
    base: float,
    cap: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """Delay before retry number ``failures`` (1-based): between half and all of
    ``min(cap, base * 2**(failures-1))``, so that replicas that failed together do not
    retry together, yet never retry sooner than half the nominal delay."""
    if failures <= 0:
        return 0.0
    nominal = min(cap, base * (2 ** min(failures - 1, 30)))
    return nominal * (0.5 + 0.5 * rand())


class RetryPolicy(Protocol):
    def delay(self, failures: int) -> float:
        """Seconds before the next attempt at a version that failed ``failures`` times
        in a row (1-based)."""
        ...


@dataclass(frozen=True)
class ExponentialBackoff:
    """Exponential backoff with jitter (``backoff_delay``) from ``base_s`` up to ``cap_s``."""

    base_s: float = 1.0
    cap_s: float = 60.0
    rand: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def delay(self, failures: int) -> float:
        return backoff_delay(failures, self.base_s, self.cap_s, self.rand)
