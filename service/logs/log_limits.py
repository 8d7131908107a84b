"""Keep per-request warnings from flooding the log.

MLflow warns on every request whose input has columns the signature does not name
("Found extra inputs ... These inputs will be ignored"): with the demo's own requests
that is one WARNING per prediction. The same message is let through once per window,
with a count of what was held back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

# MLflow loggers that warn per request about input data.
PER_REQUEST_LOGGERS = ("mlflow.models.utils",)


class RepeatLimiter(logging.Filter):
    def __init__(
        self, window_s: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._window_s = window_s
        self._clock = clock
        self._last: dict[str, tuple[float, int]] = {}  # message -> (last shown, held back)
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = record.getMessage()
        now = self._clock()
        with self._lock:
            shown_at, held = self._last.get(key, (None, 0))
            if shown_at is not None and now - shown_at < self._window_s:
                self._last[key] = (shown_at, held + 1)
                return False
            if len(self._last) > 1000:  # bounded: forget everything rather than grow
                self._last.clear()
            self._last[key] = (now, 0)
        if held:
            record.msg = f"{record.getMessage()} (and {held} more times since it was last shown)"
            record.args = None
        return True


def limit_per_request_warnings(window_s: float = 300.0) -> None:
    for name in PER_REQUEST_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatLimiter) for f in logger.filters):
            logger.addFilter(RepeatLimiter(window_s))
