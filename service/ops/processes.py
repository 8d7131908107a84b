"""Who is alive: a process named by its pid *and* its start time.

A pid alone is not an identity: after a worker dies, the kernel may give its pid to any
new process (another worker, a shell, a cron job), and ``kill(pid, 0)`` then says "alive"
for a process that is gone. Files that name a worker (readiness markers, Prometheus
multiprocess files) record its identity, and liveness checks compare the start time too.
The start time is field 22 of ``/proc/<pid>/stat``: clock ticks since boot, fixed for the
life of a process, so a reused pid cannot match it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def pid_alive(pid: int) -> bool:
    """Whether some process has this pid (signal 0 checks without sending)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot; None when there is no such
    process (or no /proc to ask)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # Field 2, the command name, is in parentheses and may hold spaces or ")": the
    # fields after the last ")" start at field 3.
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(fields[22 - 3])
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True)
class ProcessIdentity:
    """A pid with the start time of the process that had it; ``started`` is None only
    where /proc cannot be read (then liveness falls back to the pid alone)."""

    pid: int
    started: int | None

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity:
        return cls(pid, start_ticks(pid))

    @classmethod
    def current(cls) -> ProcessIdentity:
        return cls.of(os.getpid())

    def alive(self) -> bool:
        """Whether this very process still runs (not merely one with its pid)."""
        if self.started is None:
            return pid_alive(self.pid)
        return start_ticks(self.pid) == self.started

    def to_text(self) -> str:
        return f"{self.pid} {'' if self.started is None else self.started}".strip()

    @classmethod
    def from_text(cls, text: str) -> ProcessIdentity | None:
        """Parse ``to_text``'s output; None for anything else (a torn or foreign file)."""
        parts = text.split()
        if len(parts) not in (1, 2) or not all(p.isascii() and p.isdigit() for p in parts):
            return None
        return cls(int(parts[0]), int(parts[1]) if len(parts) == 2 else None)
