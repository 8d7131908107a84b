"""What the inference log's unit tests share: a prediction row with chosen fields, and a
LogCounts that remembers."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from service.inference_log.records import Row, prediction_row

AT = datetime(2026, 11, 29, 23, 5, 9, 250000, tzinfo=UTC)


def prediction(**fields: Any) -> Row:
    """A prediction row: request "req-1" of diabetes, answered by Staging v2 (override);
    ``fields`` replace any of ``prediction_row``'s arguments."""
    chosen: dict[str, Any] = {
        "request_id": "req-1",
        "at": AT,
        "model": "diabetes",
        "target": "Staging",
        "version": 2,
        "how": "override",
        "latency_s": 0.0125,
        "status": 200,
        "content_type": "application/json",
        "body": b'{"inputs": [[1.0]]}',
        "output": b'{"predictions": [151.2]}',
        "max_input_bytes": 1024,
    }
    return prediction_row(**{**chosen, **fields})


class Counts:
    """A LogCounts that remembers."""

    def __init__(self) -> None:
        self.counted: Counter[tuple[str, ...]] = Counter()

    def written(self, kind: str, rows: int) -> None:
        self.counted["written", kind] += rows

    def dropped(self, destination: str, reason: str, rows: int) -> None:
        self.counted["dropped", destination, reason] += rows

    def file_written(self) -> None:
        self.counted["files",] += 1

    def sink_event(self, outcome: str) -> None:
        self.counted["event", outcome] += 1
