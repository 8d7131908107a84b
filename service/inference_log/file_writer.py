"""The Parquet destination's handler: rows into files, rotation between batches, every
file closed at stop; rows written and refused counted by the writer."""

from __future__ import annotations

import logging
from collections import Counter

from service.inference_log.log_counts import FILES, WRITE_ERROR, LogCounts
from service.inference_log.parquet_files import ParquetFiles
from service.inference_log.records import Row

log = logging.getLogger("stageserve.inference_log")

# Rows written at most per step (one row group per partition); more wait for the next.
BATCH_ROWS = 10_000
# How often queued rows are written when the queue is not half full.
FLUSH_INTERVAL_S = 1.0


class FileWriter:
    def __init__(self, files: ParquetFiles, counts: LogCounts) -> None:
        self._files = files
        self._counts = counts

    def handle(self, rows: list[Row]) -> None:
        try:
            self._files.write(rows)
        except Exception as exc:
            self._counts.dropped(FILES, WRITE_ERROR, len(rows))
            log.warning(
                "inference log: %d rows not written to %s: %s", len(rows), self._files.root, exc
            )
            return
        for kind, count in Counter(row.kind for row in rows).items():
            self._counts.written(kind, count)

    def idle(self) -> float | None:
        return self._files.rotate()

    def finish(self) -> None:
        self._files.close_all()
