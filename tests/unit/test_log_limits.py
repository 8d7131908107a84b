"""The repeat limiter shows a message once per window and says how many it held back."""

from __future__ import annotations

import logging

from service.logs.log_limits import RepeatLimiter


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord(
        "mlflow.models.utils", logging.WARNING, __file__, 1, message, None, None
    )


def test_repeats_are_held_back_within_the_window() -> None:
    now = [0.0]
    limiter = RepeatLimiter(window_s=60, clock=lambda: now[0])
    assert limiter.filter(record("extra inputs: a"))
    assert not limiter.filter(record("extra inputs: a"))
    assert not limiter.filter(record("extra inputs: a"))
    assert limiter.filter(record("extra inputs: b"))  # another message is not held back
    now[0] = 61
    again = record("extra inputs: a")
    assert limiter.filter(again)
    assert again.getMessage() == "extra inputs: a (and 2 more times since it was last shown)"


def test_limiter_attached_to_a_real_logger_drops_repeats(caplog) -> None:
    logger = logging.getLogger("test.repeat")
    logger.addFilter(RepeatLimiter(window_s=60))
    with caplog.at_level(logging.WARNING, logger="test.repeat"):
        for _ in range(5):
            logger.warning("Found extra inputs %s", "['s1']")
    assert [r.getMessage() for r in caplog.records] == ["Found extra inputs ['s1']"]
