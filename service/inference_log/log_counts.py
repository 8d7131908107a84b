"""What the inference log counts, and the words it counts with.

The destinations and the log's parts report through ``LogCounts``; ``MetricCounts``
writes those reports to the worker's Prometheus metrics (service/ops/metrics.py), and
tests pass their own. Every series is created at zero at start
(service/ops/worker_metrics.py, from the tuples here), so ``increase()`` sees the first
drop.
"""

from __future__ import annotations

from typing import Protocol

from service.inference_log.bounded_queue import CLOSED, FULL
from service.inference_log.records import KINDS
from service.ops.metrics import Metrics

FILES = "file"
SINK = "sink"
WRITE_ERROR = "write_error"  # the file system refused the rows
SINK_ERROR = "sink_error"  # an event of the row was refused, timed out or unreachable
DROP_REASONS = {
    FILES: (FULL, CLOSED, WRITE_ERROR),
    SINK: (FULL, CLOSED, SINK_ERROR),
}
SENT = "sent"
FAILED = "failed"
EVENT_OUTCOMES = (SENT, FAILED)

__all__ = ["DROP_REASONS", "EVENT_OUTCOMES", "KINDS", "LogCounts", "MetricCounts"]


class LogCounts(Protocol):
    def written(self, kind: str, rows: int) -> None:
        """Rows written to a Parquet file."""

    def dropped(self, destination: str, reason: str, rows: int) -> None:
        """Rows a destination will never have."""

    def file_written(self) -> None:
        """A Parquet file completed (closed and renamed)."""

    def sink_event(self, outcome: str) -> None:
        """One CloudEvent sent (2xx) or failed."""


class MetricCounts:
    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def written(self, kind: str, rows: int) -> None:
        self._m.inference_log_rows.labels(kind).inc(rows)

    def dropped(self, destination: str, reason: str, rows: int) -> None:
        self._m.inference_log_dropped.labels(destination, reason).inc(rows)

    def file_written(self) -> None:
        self._m.inference_log_files.inc()

    def sink_event(self, outcome: str) -> None:
        self._m.inference_log_sink_events.labels(outcome).inc()
