"""The inference log's row: one answered prediction or one feedback item, and the one
Arrow schema both are written with.

One schema with a ``kind`` column ("prediction" or "feedback"), not two tables: the
folder then reads as one table (``pandas.read_parquet(dir)``, DuckDB's
``read_parquet('dir/**/*.parquet')``), where a feedback row joins its prediction by
``request_id`` in a self-join; two schemas under one root would not read as one dataset
(pyarrow refuses to merge them). Columns a kind does not have are null.

``model`` and ``date`` are not columns of the files: they are the hive partitions of the
path (``model=<name>/date=YYYY-MM-DD``), which both readers turn into columns; written
in the files too, pyarrow refuses the dataset (a string column against a dictionary
partition).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

PREDICTION = "prediction"
FEEDBACK = "feedback"
KINDS = (PREDICTION, FEEDBACK)

SCHEMA = pa.schema(
    [
        pa.field("kind", pa.string(), nullable=False),
        pa.field("request_id", pa.string()),
        pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("target", pa.string()),
        pa.field("version", pa.int64()),
        pa.field("how", pa.string()),  # how the target was chosen: random, sticky, override
        pa.field("latency_ms", pa.float64()),
        pa.field("status", pa.int32()),
        pa.field("content_type", pa.string()),  # of the input, as the client sent it
        pa.field("input", pa.string()),
        pa.field("input_truncated", pa.bool_()),
        pa.field("output", pa.string()),
        pa.field("reward", pa.float64()),
        pa.field("truth", pa.string()),  # JSON text
    ]
)
# Bytes a row is counted for beyond its texts (the queues' byte budgets).
ROW_OVERHEAD_BYTES = 256


@dataclass(frozen=True)
class Row:
    """One row of the log; ``model`` and the day of ``time`` say where it is filed."""

    kind: str
    model: str
    time: datetime  # UTC
    request_id: str | None
    target: str | None
    version: int | None
    how: str | None = None
    latency_ms: float | None = None
    status: int | None = None
    content_type: str | None = None
    input: str | None = None
    input_truncated: bool | None = None
    output: str | None = None
    reward: float | None = None
    truth: str | None = None

    @property
    def day(self) -> date:
        return self.time.astimezone(UTC).date()

    @property
    def size(self) -> int:
        """About the bytes the row holds while it waits (its texts, in characters, and an
        overhead): what a queue's byte budget counts."""
        texts = (self.input, self.output, self.truth, self.request_id, self.model, self.target)
        return ROW_OVERHEAD_BYTES + sum(len(t) for t in texts if t is not None)


def kept_bytes(body: bytes, max_bytes: int) -> int:
    """How many bytes of ``body`` to keep: at most ``max_bytes``, never cutting a UTF-8
    character (a cut before a continuation byte moves back to the character's start)."""
    if len(body) <= max_bytes:
        return len(body)
    cut = max_bytes
    while cut > 0 and max_bytes - cut < 3 and body[cut] & 0xC0 == 0x80:
        cut -= 1
    return cut if body[cut] & 0xC0 != 0x80 else max_bytes


def bounded_text(body: bytes, max_bytes: int) -> tuple[str, bool]:
    """The first ``kept_bytes`` of a body as text (UTF-8, undecodable bytes replaced);
    and whether it was cut."""
    kept = kept_bytes(body, max_bytes)
    return body[:kept].decode("utf-8", errors="replace"), kept < len(body)


def prediction_row(
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
    max_input_bytes: int,
) -> Row:
    """The row of one answered prediction (the input cut to ``max_input_bytes``)."""
    text, truncated = bounded_text(body, max_input_bytes)
    return Row(
        kind=PREDICTION,
        model=model,
        time=at,
        request_id=request_id,
        target=target,
        version=version,
        how=how,
        latency_ms=latency_s * 1000.0,
        status=status,
        content_type=content_type,
        input=text,
        input_truncated=truncated,
        output=output.decode("utf-8", errors="replace"),
    )


def feedback_row(
    *,
    request_id: str,
    at: datetime,
    model: str,
    target: str | None,
    version: int | None,
    reward: float | None = None,
    truth: Any = None,
) -> Row:
    """The row of one feedback item; ``truth`` is any JSON value (None: none given)."""
    return Row(
        kind=FEEDBACK,
        model=model,
        time=at,
        request_id=request_id,
        target=target,
        version=version,
        reward=reward,
        truth=None if truth is None else json.dumps(truth, separators=(",", ":")),
    )


def table_of(rows: list[Row]) -> pa.Table:
    """Rows (of one partition) as an Arrow table of ``SCHEMA``."""
    return pa.Table.from_pydict(
        {name: [getattr(row, name) for row in rows] for name in SCHEMA.names}, schema=SCHEMA
    )
