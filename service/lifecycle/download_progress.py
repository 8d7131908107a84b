"""What the log says of a version's download: a line before it starts, progress while
a big one runs.

"downloading diabetes v2 (Staging) from models:/m-1f2e: 3 files, 12.4 MB" comes first
(size unknown when the artifacts could not be listed), then, every ``interval_s`` while
the download still runs, "downloading diabetes v2: 45.0 MB of 120.0 MB (38%) after 10 s"
(a stall says so). A download shorter than one interval logs no progress line. Pure:
the loader (service/lifecycle/loader.py) measures, this decides and words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

UNITS = ("B", "kB", "MB", "GB", "TB")
DEFAULT_INTERVAL_S = 5.0


def format_size(size: int) -> str:
    """A byte count for people: 512 B, 12.4 MB (decimal units)."""
    value = float(max(size, 0))
    for unit in UNITS:
        if value < 1000 or unit == UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("not reached")


@dataclass(frozen=True)
class ArtifactListing:
    """What listing a version's artifacts found: how many files, and their total size
    (None when a size was not given)."""

    files: int
    total_bytes: int | None


def start_message(
    model: str,
    version: int,
    targets: Sequence[str],
    source: str,
    listing: ArtifactListing | None,
) -> str:
    """The line logged before a download starts (``listing`` None: it failed)."""
    serving = f" ({', '.join(targets)})" if targets else ""
    if listing is None:
        size = "size unknown"
    else:
        noun = "file" if listing.files == 1 else "files"
        known = "size unknown" if listing.total_bytes is None else format_size(listing.total_bytes)
        size = f"{listing.files} {noun}, {known}"
    return f"downloading {model} v{version}{serving} from {source}: {size}"


class ProgressReport:
    """Words the progress of one download at each tick, and notices a stall."""

    def __init__(self, model: str, version: int, total_bytes: int | None) -> None:
        self._what = f"{model} v{version}"
        self._total = total_bytes
        self._last_bytes = -1
        self._last_change_s = 0.0

    def line(self, done_bytes: int, elapsed_s: float) -> str:
        """The progress line for ``done_bytes`` on disk ``elapsed_s`` into the download."""
        if done_bytes != self._last_bytes:
            self._last_bytes, self._last_change_s = done_bytes, elapsed_s
        done = format_size(done_bytes)
        if self._total:
            percent = min(100, int(done_bytes * 100 / self._total))
            amount = f"{done} of {format_size(self._total)} ({percent}%)"
        else:
            amount = f"{done} so far"
        line = f"downloading {self._what}: {amount} after {elapsed_s:.0f} s"
        stalled_s = elapsed_s - self._last_change_s
        if stalled_s > 0:
            line += f", no progress in the last {stalled_s:.0f} s"
        return line
