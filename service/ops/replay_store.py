"""Delivery ids already received by any worker of this gateway, so that a replayed
webhook delivery is refused whichever worker it reaches.

One empty file per id, created with O_EXCL in the runtime folder the workers share;
files older than twice the tolerance are pruned now and then. Without a runtime folder
(one worker, no ``stageserve serve``) the ids are kept in memory
(registry_watcher/deliveries.py's ReplayCache).
"""

from __future__ import annotations

import contextlib
import hashlib
import os

from registry_watcher.deliveries import ReplayCache, ReplayStore

DELIVERIES_FOLDER = "deliveries"


class DirectoryReplayCache:
    PRUNE_EVERY = 64

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self._adds = 0

    def add(self, delivery_id: str, now: float, tolerance_s: float) -> bool:
        """Remember an id; False if any worker already had it (a replay)."""
        self._adds += 1
        if self._adds % self.PRUNE_EVERY == 0:
            self._prune(now - 2 * tolerance_s)
        name = hashlib.sha256(delivery_id.encode()).hexdigest()
        try:
            fd = os.open(os.path.join(self.directory, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        os.close(fd)
        return True

    def _prune(self, older_than: float) -> None:
        for entry in os.scandir(self.directory):
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < older_than:
                    os.unlink(entry.path)


def replay_store(runtime_dir: str | None) -> ReplayStore:
    """The shared store under the runtime folder, or one in memory without it."""
    if runtime_dir:
        return DirectoryReplayCache(os.path.join(runtime_dir, DELIVERIES_FOLDER))
    return ReplayCache()
