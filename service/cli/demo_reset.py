"""``stageserve demo --reset``: empty a demo registry folder so the demo seeds afresh.

Only what the demo creates there is deleted (the SQLite database, its journal files,
the artifact root), and only in a folder that holds nothing else: ``--dir ~`` or a
project folder is refused with one line, and nothing in it is touched. The check is
pure (``refusal``) apart from the listing and the deletion.
"""

from __future__ import annotations

import shutil
from collections.abc import Collection
from pathlib import Path

DATABASE = "mlflow.db"
ARTIFACTS = "artifacts"
# What a demo registry folder may hold: the database, SQLite's side files, the artifacts.
DEMO_ENTRIES = frozenset(
    {DATABASE, f"{DATABASE}-journal", f"{DATABASE}-wal", f"{DATABASE}-shm", ARTIFACTS}
)
SQLITE_HEADER = b"SQLite format 3\x00"


class NotADemoRegistry(Exception):
    """The folder exists but is not (only) a demo registry: nothing was deleted."""


def refusal(folder: str, entries: Collection[str], database_is_sqlite: bool) -> str | None:
    """Why ``folder`` (holding ``entries``) must not be emptied, or None when it is a
    demo registry (or empty)."""
    foreign = sorted(set(entries) - DEMO_ENTRIES)
    if foreign:
        shown = ", ".join(foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        return (
            f"--reset: {folder} does not look like a demo registry (it holds {shown}); "
            "nothing deleted"
        )
    if DATABASE in entries and not database_is_sqlite:
        return f"--reset: {folder}/{DATABASE} is not a SQLite database; nothing deleted"
    return None


def reset(root: Path) -> list[str]:
    """Delete the demo's files in ``root`` (a missing folder is already fresh); returns
    the names deleted. Raises NotADemoRegistry, deleting nothing, for any other folder."""
    if not root.exists():
        return []
    if not root.is_dir():
        raise NotADemoRegistry(f"--reset: {root} is not a folder; nothing deleted")
    entries = {entry.name: entry for entry in root.iterdir()}
    problem = refusal(str(root), entries, _is_sqlite(root / DATABASE))
    if problem:
        raise NotADemoRegistry(problem)
    for entry in entries.values():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:  # a file, or a link (removed, never followed)
            entry.unlink()
    return sorted(entries)


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            head = file.read(len(SQLITE_HEADER))
    except OSError:
        return False
    return head in (SQLITE_HEADER, b"")  # an empty file is an empty SQLite database
