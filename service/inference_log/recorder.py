"""``InferenceLog``: what the gateway holds of the inference log. The request path asks
``sampled()`` and hands over an answered prediction; the feedback endpoint hands over
feedback items; the gateway starts it and stops it (which writes everything accepted).

``inference_log_from`` builds it from the settings: the Parquet files when
``STAGESERVE_INFERENCE_LOG_DIR`` is set, the CloudEvents sink when
``STAGESERVE_INFERENCE_LOG_URL`` is; None when neither is (off: the request path pays
one ``is None`` check).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.inference_log.bounded_queue import BoundedQueue
from service.inference_log.file_layout import Rotation
from service.inference_log.file_writer import BATCH_ROWS, FLUSH_INTERVAL_S, FileWriter
from service.inference_log.http_sink import HttpSink
from service.inference_log.log_counts import FILES, SINK, LogCounts
from service.inference_log.parquet_files import ParquetFiles
from service.inference_log.records import feedback_row, prediction_row
from service.inference_log.row_pump import RowPump
from service.inference_log.sampling import Sampler

# The longest a stop waits: files first, then what is left for the sink (at least
# SINK_STOP_S). Within BentoML's shutdown and the Kubernetes grace period.
STOP_TIMEOUT_S = 10.0
SINK_STOP_S = 2.0


class InferenceLog:
    def __init__(
        self,
        sampler: Sampler,
        max_input_bytes: int,
        files: RowPump | None,
        sink: RowPump | None,
    ) -> None:
        self._sampler = sampler
        self._max_input_bytes = max_input_bytes
        self._files = files
        self._sink = sink

    def sampled(self) -> bool:
        """Whether this prediction request is logged (draw before answering it)."""
        return self._sampler.take()

    def record_prediction(
        self,
        *,
        request_id: str | None,
        at: datetime,
        model: str,
        target: str,
        version: int,
        how: str,
        latency_s: float,
        status: int,
        content_type: str | None,
        body: bytes,
        output: bytes,
    ) -> None:
        """Queue an answered prediction for every destination; never blocks."""
        row = prediction_row(
            request_id=request_id,
            at=at,
            model=model,
            target=target,
            version=version,
            how=how,
            latency_s=latency_s,
            status=status,
            content_type=content_type,
            body=body,
            output=output,
            max_input_bytes=self._max_input_bytes,
        )
        for pump in (self._files, self._sink):
            if pump is not None:
                pump.offer(row)

    def record_feedback(
        self,
        *,
        request_id: str,
        model: str,
        target: str | None,
        version: int | None,
        reward: float | None = None,
        truth: Any = None,
        at: datetime | None = None,
    ) -> None:
        """Queue one feedback item for the files (never sampled; the sink takes only
        predictions); ``truth`` is the JSON value given (None: none). Never blocks."""
        if self._files is None:
            return
        row = feedback_row(
            request_id=request_id,
            at=at or datetime.now(UTC),
            model=model,
            target=target,
            version=version,
            reward=reward,
            truth=truth,
        )
        self._files.offer(row)

    def start(self) -> None:
        for pump in (self._files, self._sink):
            if pump is not None:
                pump.start()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """Write every accepted row and close every file, then send what the sink has
        queued, within ``timeout_s``; whether everything was done."""
        deadline = time.monotonic() + timeout_s
        done = True
        if self._files is not None:
            done = self._files.stop(max(0.0, deadline - time.monotonic() - SINK_STOP_S))
        if self._sink is not None:
            done = self._sink.stop(max(SINK_STOP_S, deadline - time.monotonic())) and done
        return done


def inference_log_from(
    *,
    folder: str | None,
    url: str | None,
    sample: float,
    max_input_bytes: int,
    max_file_bytes: int,
    rotate_s: float,
    queue_rows: int,
    queue_bytes: int,
    sink_queue_rows: int,
    counts: LogCounts,
    pid: int,
    started_at: float,
) -> InferenceLog | None:
    """The log these settings ask for, or None when it is off."""
    if folder is None and url is None:
        return None
    files = None
    if folder is not None:
        parquet = ParquetFiles(
            Path(folder),
            Rotation(max_file_bytes, rotate_s),
            pid,
            started_at,
            on_file=lambda path, rows: counts.file_written(),
        )
        files = RowPump(
            "inference-log-files",
            FILES,
            FileWriter(parquet, counts),
            BoundedQueue(queue_rows, queue_bytes),
            counts,
            BATCH_ROWS,
            FLUSH_INTERVAL_S,
        )
    sink = None
    if url is not None:
        sink = RowPump(
            "inference-log-sink",
            SINK,
            HttpSink(url, counts),
            BoundedQueue(sink_queue_rows, queue_bytes),
            counts,
            1,
            None,
        )
    return InferenceLog(Sampler(sample), max_input_bytes, files, sink)
