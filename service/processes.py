"""Is this process, and not another that got its pid since, still alive?

A pid alone is not an identity: pids are reused, and a crash-looping container starts
its processes with the same small pids every time. A pid plus the process's start time
(``/proc/<pid>/stat`` field 22, clock ticks since boot) is.
"""

from __future__ import annotations

import os

_PROC = "/proc"


def process_start_time(pid: int) -> int | None:
    """The start time of process ``pid``; None when there is no such process (or no /proc)."""
    try:
        with open(os.path.join(_PROC, str(pid), "stat"), "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # Field 2 (the command name) is in parentheses and may hold spaces or parentheses:
    # count fields after the last ')'. Field 3 is then index 0, field 22 index 19.
    try:
        return int(stat[stat.rindex(b")") + 2 :].split()[19])
    except (ValueError, IndexError):
        return None


def alive(pid: int, start_time: int) -> bool:
    """Whether the process that had ``start_time`` under ``pid`` is still running."""
    return process_start_time(pid) == start_time
