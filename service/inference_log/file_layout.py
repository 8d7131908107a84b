"""Where the inference log's files go, what they are called, and when one is complete.

``<dir>/model=<name, percent-encoded>/date=YYYY-MM-DD/<pid>-<start>-<seq>.parquet``:
hive-style partitions, which pandas (pyarrow) and DuckDB both read as the columns
``model`` and ``date`` (both percent-decode the value, so any registered model name,
``/`` included, is one folder). The file name holds the worker's pid, its start time
and a sequence number, so workers and restarts never collide. A file is written as
``.<name>.tmp`` (hidden: neither reader picks it up) and renamed when closed.

A file is closed (rotated) when it has ``max_bytes`` bytes or has been open for
``max_age_s`` seconds, whichever comes first: so a quiet model's rows become readable
within ``max_age_s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import quote

SUFFIX = ".parquet"
TEMP_SUFFIX = ".tmp"


def partition_dir(root: Path, model: str, day: date) -> Path:
    """The folder of one model's rows of one (UTC) day."""
    return root / f"model={quote(model, safe='')}" / f"date={day.isoformat()}"


def file_name(pid: int, started_at: float, seq: int) -> str:
    """``<pid>-<start, UTC, to the second>-<seq, 6 digits>.parquet``."""
    start = datetime.fromtimestamp(started_at, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{pid}-{start}-{seq:06d}{SUFFIX}"


def temp_path(final: Path) -> Path:
    """The hidden name a file has while it is written."""
    return final.with_name(f".{final.name}{TEMP_SUFFIX}")


@dataclass(frozen=True)
class Rotation:
    """When an open file is complete."""

    max_bytes: int
    max_age_s: float

    def due(self, written_bytes: int, opened_at: float, now: float) -> bool:
        return written_bytes >= self.max_bytes or now - opened_at >= self.max_age_s

    def next_due_in(self, opened_at: float, now: float) -> float:
        """Seconds until a file opened at ``opened_at`` is due by age (0 if it is)."""
        return max(0.0, opened_at + self.max_age_s - now)
