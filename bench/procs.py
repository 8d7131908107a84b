"""Process facts from /proc: a worker's memory and the CPU time it has used (the
workers themselves are found by tests/support/processes.py)."""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")


def rss_kib(pid: int) -> int | None:
    """Resident set size (VmRSS) in KiB, None when the process is gone."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time the process has used, None when it is gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is parenthesised and may hold spaces or ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """CPU seconds of each process so far (0 for one that is gone)."""
    return {pid: cpu_seconds(pid) or 0.0 for pid in pids}
