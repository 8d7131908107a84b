"""Process basics per worker (memory, CPU, open files, start time), read from /proc.

In Prometheus multiprocess mode, prometheus_client's own process collector reports
nothing (BentoML exposes only what the worker files hold), so each worker publishes
these as ``liveall`` gauges: one series per live worker, labelled with its pid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class ProcessStats:
    resident_memory_bytes: float
    cpu_seconds: float
    open_fds: float


def read_process_stats() -> ProcessStats:
    """This process's resident memory, CPU time and open file descriptors."""
    try:
        with open("/proc/self/statm") as fh:
            resident_pages = int(fh.read().split()[1])
        rss = float(resident_pages * _PAGE_SIZE)
    except (OSError, ValueError, IndexError):
        rss = 0.0
    times = os.times()
    try:
        fds = float(len(os.listdir("/proc/self/fd")))
    except OSError:
        fds = 0.0
    return ProcessStats(rss, times.user + times.system, fds)
