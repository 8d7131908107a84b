"""Which answered predictions the inference log keeps: a share in [0, 1].

At 0 (the default) the request path pays one check and nothing else; at 1 every answer
is kept. In between, each request is drawn on its own (uniformly), so the share kept
does not depend on traffic patterns. Feedback is never sampled: it is rare, and each
item is what an offline join needs.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Sampler:
    def __init__(self, share: float, draw: Callable[[], float] = random.random) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"a sampling share is in [0, 1], not {share}")
        self.share = share
        self._draw = draw

    def take(self) -> bool:
        """Whether to log this request."""
        share = self.share
        if share <= 0.0:
            return False
        return share >= 1.0 or self._draw() < share
