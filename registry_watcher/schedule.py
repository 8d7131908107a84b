"""When the watcher polls next: the poll interval, also during a registry outage.

Backoff is for retries that would otherwise come faster than the normal load: a
failed model load retried in a tight loop would download gigabytes a minute, so the
pool backs its retries off (``backoff.py``). A registry poll is not such a retry: the
watcher polls every interval anyway, and the registry is sized for that. Backing polls
off during an outage saves the registry nothing it is not already built to take, and
costs the one thing that matters once it is back: with a 60 s cap, a gateway slept
through the registry's return for up to a minute before noticing a promotion.

So a failed poll is followed by the next one after the normal interval, jittered by
±``jitter`` (uniform, mean exactly one interval) so that replicas that failed together
drift apart instead of hitting a recovering registry in lockstep. A change made once
the registry is back is seen within ``(1 + jitter)`` intervals plus one poll's time,
whatever the outage's length, and a down registry gets, on average, one request per
interval per worker, as it does when healthy. A poll that hangs (a black-holed
registry) is bounded by the reader's HTTP timeout, not here.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PollSchedule:
    interval_s: float
    jitter: float = 0.25  # fraction of the interval, each way, after a failed poll
    rand: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.interval_s <= 0:
            raise ValueError("interval_s must be positive")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    def delay(self, consecutive_failures: int) -> float:
        """Seconds to wait before the next poll."""
        if consecutive_failures <= 0:
            return self.interval_s
        return self.interval_s * (1 + self.jitter * (2 * self.rand() - 1))
