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
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from service.config import Settings
from service.experiments.feedback_tally import AcceptedFeedback
from service.inference_log.bounded_queue import BoundedQueue
from service.inference_log.file_layout import Rotation
from service.inference_log.file_writer import BATCH_ROWS, FLUSH_INTERVAL_S, FileWriter
from service.inference_log.http_sink import HttpSink
from service.inference_log.log_counts import FILES, SINK, LogCounts
from service.inference_log.parquet_files import ParquetFiles
from service.inference_log.records import PREDICTION, Row, feedback_row
from service.inference_log.row_pump import RowPump
from service.inference_log.sampling import Sampler

# The longest a stop waits: files first, then what is left for the sink (at least
# SINK_STOP_S; an event in flight may take its timeout more). Within BentoML's shutdown
# and the Kubernetes grace period.
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
        self.max_input_bytes = max_input_bytes  # of a request body kept in a prediction row
        self._files = files
        self._sink = sink

    def sampled(self) -> bool:
        """Whether this prediction request is logged (draw before answering it)."""
        return self._sampler.take()

    def record(self, row: Row) -> None:
        """Queue a row (``records.prediction_row``, ``records.feedback_row``) for every
        destination that takes its kind (feedback: only the files, KServe's format has
        none); never blocks. Feedback is never sampled."""
        if self._files is not None:
            self._files.offer(row)
        if self._sink is not None and row.kind == PREDICTION:
            self._sink.offer(row)

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
            reserved = SINK_STOP_S if self._sink is not None else 0.0  # the sink's share
            done = self._files.stop(max(0.0, deadline - time.monotonic() - reserved))
        if self._sink is not None:
            done = self._sink.stop(max(SINK_STOP_S, deadline - time.monotonic())) and done
        return done


def inference_log_from(
    settings: Settings, counts: LogCounts, pid: int, started_at: float
) -> InferenceLog | None:
    """The log the settings ask for (``STAGESERVE_INFERENCE_LOG_*``), or None when off."""
    if settings.inference_log_dir is None and settings.inference_log_url is None:
        return None
    files = None
    if settings.inference_log_dir is not None:
        parquet = ParquetFiles(
            Path(settings.inference_log_dir),
            Rotation(settings.inference_log_max_file_bytes, settings.inference_log_rotate_s),
            pid,
            started_at,
            on_file=lambda path, rows: counts.file_written(),
        )
        files = RowPump(
            "inference-log-files",
            FILES,
            FileWriter(parquet, counts),
            BoundedQueue(settings.inference_log_queue, settings.inference_log_queue_bytes),
            counts,
            BATCH_ROWS,
            FLUSH_INTERVAL_S,
        )
    sink = None
    if settings.inference_log_url is not None:
        sink = RowPump(
            "inference-log-sink",
            SINK,
            HttpSink(settings.inference_log_url, counts, settings.inference_log_sink_timeout_s),
            BoundedQueue(settings.inference_log_sink_queue, settings.inference_log_queue_bytes),
            counts,
            1,
            None,
        )
    sampler = Sampler(settings.inference_log_sample)
    return InferenceLog(sampler, settings.inference_log_max_input_bytes, files, sink)


def feedback_logger(log: InferenceLog) -> Callable[[Sequence[AcceptedFeedback]], None]:
    """The feedback intake's hook (service/experiments/feedback_intake.py): each item
    counted now becomes a feedback row under the signed id its prediction row carries,
    so the two join on ``request_id``. Never blocks (``record`` only queues)."""

    def record(items: Sequence[AcceptedFeedback]) -> None:
        for item in items:
            attribution = item.attribution
            log.record(
                feedback_row(
                    request_id=attribution.request_id,
                    at=datetime.fromtimestamp(item.received_at, UTC),
                    model=attribution.model,
                    target=attribution.target,
                    version=attribution.version,
                    reward=item.reward,
                    truth=item.truth if item.has_truth else None,
                )
            )

    return record
