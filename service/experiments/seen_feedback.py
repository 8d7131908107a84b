"""Feedback already counted, by key, across every worker of a gateway and its restarts,
so that a resent item is counted once.

A small SQLite file in the runtime folder (WAL, one transaction per batch,
``INSERT OR IGNORE``: the row count says whether a key is new); rows are kept until the
id they name expires (its max age), then pruned. Without a runtime folder, an in-memory
database (one worker). Blocking: call it from a thread, never on the event loop.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Sequence

SEEN_FILE = "feedback-seen.sqlite"
BUSY_TIMEOUT_S = 10.0
PRUNE_EVERY = 256  # batches between prunes of expired keys


class SeenFeedback:
    def __init__(self, path: str | None) -> None:
        """``path``: the database file; None: in memory."""
        self.path = path
        self._lock = threading.Lock()  # one connection per worker, used from threads
        self._db = sqlite3.connect(
            path or ":memory:", timeout=BUSY_TIMEOUT_S, isolation_level=None,
            check_same_thread=False,
        )  # fmt: skip
        if path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, expires REAL NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS seen_expires ON seen (expires)")
        self._batches = 0

    def add(self, keys: Sequence[tuple[str, float]], now: float) -> list[bool]:
        """Record (key, expiry time) pairs in one transaction; for each, True if no worker
        had it yet (a key twice in ``keys``: the second is False)."""
        with self._lock:
            self._batches += 1
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                if self._batches % PRUNE_EVERY == 1:
                    db.execute("DELETE FROM seen WHERE expires < ?", (now,))
                fresh = [
                    db.execute(
                        "INSERT OR IGNORE INTO seen (key, expires) VALUES (?, ?)", pair
                    ).rowcount
                    == 1
                    for pair in keys
                ]
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return fresh

    def close(self) -> None:
        with self._lock:
            self._db.close()


def seen_feedback(runtime_dir: str | None) -> SeenFeedback:
    """The store shared by the workers under the runtime folder, or one in memory."""
    if runtime_dir:
        os.makedirs(runtime_dir, exist_ok=True)
        return SeenFeedback(os.path.join(runtime_dir, SEEN_FILE))
    return SeenFeedback(None)
