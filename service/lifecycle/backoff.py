"""Exponential backoff with jitter, for model load retries. (Registry polls do not back
off: see schedule.py.)"""

from __future__ import annotations

import random
from collections.abc import Callable


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
