"""Process facts from /proc: descendants of a server (its workers) and their memory.

BentoML's supervisor (circus) puts each worker in its own session, so killing the
server's process group alone can orphan them; the bench stops descendants by pid too.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")


def children_map() -> dict[int, list[int]]:
    """Parent pid → child pids, from every /proc/PID/stat (field 4 is the parent)."""
    out: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) is parenthesised and may hold spaces or ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        out.setdefault(int(fields[1]), []).append(int(entry.name))
    return out


def descendants(pid: int) -> list[int]:
    """Every live descendant of pid (children of children included), parents first."""
    tree = children_map()
    found: list[int] = []
    pending = list(tree.get(pid, []))
    while pending:
        child = pending.pop(0)
        found.append(child)
        pending.extend(tree.get(child, []))
    return found


def cmdline(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


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
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
