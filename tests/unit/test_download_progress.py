"""service.lifecycle.download_progress (the words) and download_watch (the measures):
what the log says before and during a version's download."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from service.lifecycle.download_progress import (
    ArtifactListing,
    ProgressReport,
    format_size,
    start_message,
)
from service.lifecycle.download_watch import ProgressTicker, folder_size, list_artifacts
from tests.support.processes import wait_until


@pytest.mark.parametrize(
    "size, text",
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (12_400_000, "12.4 MB"),
        (3_210_000_000, "3.2 GB"),
        (5 * 10**15, "5000.0 TB"),
        (-1, "0 B"),
    ],
)
def test_sizes_in_decimal_units(size: int, text: str) -> None:
    assert format_size(size) == text


def test_the_start_line_names_version_targets_source_and_size() -> None:
    listing = ArtifactListing(files=3, total_bytes=12_400_000)
    assert start_message("diabetes", 2, ["Staging"], "s3://b/m", listing) == (
        "downloading diabetes v2 (Staging) from s3://b/m: 3 files, 12.4 MB"
    )
    one = ArtifactListing(files=1, total_bytes=None)
    assert start_message("m", 1, ["Production", "@champion"], "x", one) == (
        "downloading m v1 (Production, @champion) from x: 1 file, size unknown"
    )
    assert start_message("m", 1, [], "x", None) == "downloading m v1 from x: size unknown"


def test_progress_lines_give_the_share_done_and_notice_a_stall() -> None:
    report = ProgressReport("diabetes", 2, total_bytes=120_000_000)
    assert report.line(45_000_000, 5.0) == (
        "downloading diabetes v2: 45.0 MB of 120.0 MB (37%) after 5 s"
    )
    assert report.line(45_000_000, 10.0).endswith("after 10 s, no progress in the last 5 s")
    assert report.line(45_000_000, 15.0).endswith("no progress in the last 10 s")
    assert report.line(60_000_000, 20.0).endswith("(50%) after 20 s")
    unknown = ProgressReport("m", 1, total_bytes=None)
    assert unknown.line(2_000, 5.0) == "downloading m v1: 2.0 kB so far after 5 s"


def test_artifacts_are_listed_with_their_sizes(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "MLmodel").write_bytes(b"x" * 100)
    (tmp_path / "model" / "model.pkl").write_bytes(b"y" * 2000)
    (tmp_path / "model" / "deeper").mkdir()
    (tmp_path / "model" / "deeper" / "z").write_bytes(b"z" * 3)
    assert list_artifacts(tmp_path.as_uri()) == ArtifactListing(files=3, total_bytes=2103)
    assert folder_size(str(tmp_path)) == 2103
    assert list_artifacts(tmp_path.as_uri(), max_listings=2) is None  # too many folders


def test_a_listing_that_fails_means_size_unknown() -> None:
    assert list_artifacts("nosuchscheme://host/path") is None


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def ticker_logger() -> tuple[logging.Logger, Kept]:
    kept = Kept()
    logger = logging.getLogger("tests.download")
    logger.handlers, logger.propagate = [kept], False
    logger.setLevel(logging.INFO)
    return logger, kept


def test_a_running_download_logs_progress_from_its_folder(tmp_path: Path) -> None:
    logger, kept = ticker_logger()
    report = ProgressReport("m", 3, total_bytes=4000)
    with ProgressTicker(report, str(tmp_path), logger, 0.05, {"fields": {"model": "m"}}):
        (tmp_path / "part").write_bytes(b"x" * 1000)
        seen_part = lambda: any("1.0 kB of 4.0 kB" in r.getMessage() for r in kept.records)  # noqa: E731
        assert wait_until(seen_part, 5)
    seen = len(kept.records)
    assert kept.records[-1].fields == {"model": "m"}  # type: ignore[attr-defined]
    assert not any(t.name == "download-progress" for t in threading.enumerate())
    assert len(kept.records) == seen  # nothing after the download ended


def test_a_short_download_logs_no_progress(tmp_path: Path) -> None:
    logger, kept = ticker_logger()
    with ProgressTicker(ProgressReport("m", 1, None), str(tmp_path), logger, 5.0):
        (tmp_path / "small").write_bytes(b"x")
    assert kept.records == []
