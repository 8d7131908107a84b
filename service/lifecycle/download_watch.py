"""What the loader measures of a download, for its log lines
(service/lifecycle/download_progress.py words them).

Before: the version's artifacts, listed with MLflow's artifact repository (one listing
per folder, a bounded number of folders; any failure means "size unknown", never a
failed load). During: a ticker thread that, every interval while the download still
runs, measures the destination folder (bytes written so far) and logs a progress line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Mapping
from types import TracebackType

from service.lifecycle.download_progress import (
    DEFAULT_INTERVAL_S,
    ArtifactListing,
    ProgressReport,
)

# Folders listed at most before the size is given up as unknown (each is a request).
MAX_LISTINGS = 50


def list_artifacts(artifact_uri: str, max_listings: int = MAX_LISTINGS) -> ArtifactListing | None:
    """Files and total size under ``artifact_uri``; None when they cannot be listed."""
    try:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repository = get_artifact_repository(artifact_uri)
        folders: list[str | None] = [None]
        files, total, known, listings = 0, 0, True, 0
        while folders:
            listings += 1
            if listings > max_listings:
                return None
            for info in repository.list_artifacts(folders.pop()):
                if info.is_dir:
                    folders.append(info.path)
                    continue
                files += 1
                if info.file_size is None:
                    known = False
                else:
                    total += int(info.file_size)
        return ArtifactListing(files, total if known else None)
    except Exception:  # a size is not worth failing a load for
        return None


def folder_size(path: str) -> int:
    """Bytes of the files under ``path`` now (files vanishing meanwhile are skipped)."""
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):  # gone meanwhile
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


class ProgressTicker:
    """``with ProgressTicker(...):`` around a download: a progress line every
    ``interval_s`` while it runs, none for a download shorter than that."""

    def __init__(
        self,
        report: ProgressReport,
        folder: str,
        log: logging.Logger,
        interval_s: float = DEFAULT_INTERVAL_S,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        self._report = report
        self._folder = folder
        self._log = log
        self._interval_s = interval_s
        self._extra = extra
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="download-progress", daemon=True)

    def __enter__(self) -> ProgressTicker:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join(timeout=self._interval_s)

    def _run(self) -> None:
        while not self._done.wait(self._interval_s):
            size = folder_size(self._folder)
            if self._done.is_set():  # finished while measuring: nothing to report
                return
            line = self._report.line(size, time.monotonic() - self._started)
            self._log.info("%s", line, extra=self._extra)
