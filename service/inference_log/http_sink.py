"""The HTTP sink's handler: each prediction row posted as its two CloudEvents
(service/inference_log/cloud_events.py) to ``STAGESERVE_INFERENCE_LOG_URL``.

One connection pool, a short timeout per event (``STAGESERVE_INFERENCE_LOG_SINK_TIMEOUT``,
2 s by default): a slow sink holds
up only this thread, whose queue then fills and drops (counted). Every event is counted
sent (a 2xx answer) or failed; a row with a failed event is counted as dropped
(``sink_error``). A failing sink is logged once when it starts failing and once when it
recovers, never once per event. Feedback rows are not sent: KServe's format has none.
"""

from __future__ import annotations

import logging
import uuid

import httpx

from service.inference_log.cloud_events import CloudEvent, events_of
from service.inference_log.log_counts import FAILED, SENT, SINK, SINK_ERROR, LogCounts
from service.inference_log.records import PREDICTION, Row

log = logging.getLogger("stageserve.inference_log")

SINK_TIMEOUT_S = 2.0


class HttpSink:
    def __init__(self, url: str, counts: LogCounts, timeout_s: float = SINK_TIMEOUT_S) -> None:
        self._url = url
        self._counts = counts
        self._client = httpx.Client(timeout=timeout_s)
        self._failing = False

    def handle(self, rows: list[Row]) -> None:
        for row in rows:
            if row.kind != PREDICTION:
                continue
            sent = [
                self._send(event) for event in events_of(row, row.request_id or uuid.uuid4().hex)
            ]
            if not all(sent):
                self._counts.dropped(SINK, SINK_ERROR, 1)

    def idle(self) -> float | None:
        return None

    def finish(self) -> None:
        self._client.close()

    def _send(self, event: CloudEvent) -> bool:
        try:
            status = self._client.post(
                self._url, content=event.body, headers=event.headers
            ).status_code
            problem = None if 200 <= status < 300 else f"HTTP {status}"
        except (httpx.HTTPError, OSError) as exc:
            problem = type(exc).__name__
        self._counts.sink_event(SENT if problem is None else FAILED)
        if problem is not None and not self._failing:
            log.warning(
                "inference log: the HTTP sink fails (%s); events are counted and dropped", problem
            )
        elif problem is None and self._failing:
            log.info("inference log: the HTTP sink accepts events again")
        self._failing = problem is not None
        return problem is None
