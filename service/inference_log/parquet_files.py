"""The inference log's open Parquet files: one per partition (model, day) at a time,
rows appended as row groups, closed and renamed when rotation says so.

Owned by one thread at a time (the writer's, or the stopping thread once that one has
ended): nothing here locks. A file that fails while written or closed is abandoned (its
temporary file removed, with a warning saying how many rows it held), so no reader ever
sees a broken one; closing never raises.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from service.inference_log.file_layout import Rotation, file_name, partition_dir, temp_path
from service.inference_log.records import SCHEMA, Row, table_of

log = logging.getLogger("stageserve.inference_log")

Partition = tuple[str, date]


@dataclass
class OpenFile:
    final: Path
    temp: Path
    sink: Any  # pyarrow.OSFile: tell() is the bytes written so far
    writer: Any  # pyarrow.parquet.ParquetWriter
    opened_at: float
    rows: int = 0

    @property
    def written_bytes(self) -> int:
        return int(self.sink.tell())


class ParquetFiles:
    def __init__(
        self,
        root: Path,
        rotation: Rotation,
        pid: int,
        started_at: float,
        on_file: Callable[[Path, int], None] = lambda path, rows: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        self.rotation = rotation
        self._pid = pid
        self._started_at = started_at
        self._on_file = on_file  # a file completed: its path and rows
        self._clock = clock
        self._seq = 0
        self._open: dict[Partition, OpenFile] = {}

    def write(self, rows: list[Row]) -> None:
        """Append rows to their partitions' files (one row group per partition), then
        close those that reached the size limit. Raises what the file system raised."""
        groups: dict[Partition, list[Row]] = {}
        for row in rows:
            groups.setdefault((row.model, row.day), []).append(row)
        for partition, group in groups.items():
            file = self._open.get(partition) or self._open_file(partition)
            try:
                file.writer.write_table(table_of(group))
            except Exception as exc:
                self._abandon(partition, exc)
                raise
            file.rows += len(group)
            if file.written_bytes >= self.rotation.max_bytes:
                self._close(partition)

    def rotate(self) -> float | None:
        """Close the files open for too long; seconds until the next one is due (None:
        no file open)."""
        now = self._clock()
        for partition, file in list(self._open.items()):
            if self.rotation.due(file.written_bytes, file.opened_at, now):
                self._close(partition)
        if not self._open:
            return None
        return min(self.rotation.next_due_in(f.opened_at, now) for f in self._open.values())

    def close_all(self) -> None:
        for partition in list(self._open):
            self._close(partition)

    def _open_file(self, partition: Partition) -> OpenFile:
        model, day = partition
        folder = partition_dir(self.root, model, day)
        folder.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        final = folder / file_name(self._pid, self._started_at, self._seq)
        temp = temp_path(final)
        sink = pa.OSFile(str(temp), "wb")
        try:
            writer = pq.ParquetWriter(sink, SCHEMA)
        except Exception:
            sink.close()
            temp.unlink(missing_ok=True)
            raise
        file = OpenFile(final, temp, sink, writer, self._clock())
        self._open[partition] = file
        return file

    def _close(self, partition: Partition) -> None:
        file = self._open.pop(partition)
        try:
            file.writer.close()
            file.sink.close()
            os.replace(file.temp, file.final)
        except Exception as exc:
            self._discard(file, exc)
            return
        self._on_file(file.final, file.rows)

    def _abandon(self, partition: Partition, exc: Exception) -> None:
        self._discard(self._open.pop(partition), exc)

    def _discard(self, file: OpenFile, exc: Exception) -> None:
        log.warning(
            "inference log: file %s abandoned (%d rows lost): %s", file.final, file.rows, exc
        )
        with contextlib.suppress(Exception):
            file.writer.close()
        with contextlib.suppress(Exception):
            file.sink.close()
        with contextlib.suppress(OSError):
            file.temp.unlink()
