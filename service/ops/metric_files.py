"""Forget the per-process metrics of dead workers.

In Prometheus multiprocess mode each process writes its samples to files named
``<kind>_<pid>.db`` in ``PROMETHEUS_MULTIPROC_DIR``, and every scrape merges them all.
A worker that exits cleanly drops its live gauges (BentoML calls
``prometheus_client.multiprocess.mark_process_dead`` from ``__del__``); a SIGKILLed one
never does, so its ``stageserve_process_*`` series and its share of
``stageserve_in_flight_requests`` would stay in every scrape for as long as the gateway
runs. Each worker sweeps them: at start and after every registry poll.

What goes: gauges whose value means "this process, now" (the ``live*`` modes, and
``all``, which labels each process's series with its pid). What stays: counters and
histograms (a dead worker's requests still count toward the totals, or they would go
backwards) and gauges aggregated over all processes ever (``min``/``max``/``sum``/...).

File names carry only a pid, which the kernel reuses. So each worker records its
identity (pid and start time, service/ops/processes.py) next to its files, in
``stageserve-owner-<pid>`` (not ``*.db``: the collector ignores it). Files of a pid are
stale when the recorded owner is no longer running, even if some process has its pid;
and a worker that finds files of its own pid left by a previous owner drops their gauges
before writing its own, or it would inherit the dead worker's values.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re

from service.ops.processes import ProcessIdentity

log = logging.getLogger("stageserve.metric_files")

OWNER_PREFIX = "stageserve-owner-"
# Gauge modes whose series belong to one process (prometheus_client's names).
PER_PROCESS_GAUGE_MODES = ("liveall", "livesum", "livemax", "livemin", "livemostrecent", "all")
_DB_FILE = re.compile(r"^[a-z_]+_(\d+)\.db$")


def multiprocess_dir() -> str | None:
    """Where this process's multiprocess files are (None: not in multiprocess mode)."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return path if path and os.path.isdir(path) else None


class MetricFileSweeper:
    def __init__(self, directory: str | None, identity: ProcessIdentity | None = None) -> None:
        self.directory = directory
        self._me = identity or ProcessIdentity.current()

    def claim(self) -> None:
        """Record this worker as the owner of its pid's files; call before this process
        writes any metric. Gauges left under this pid by a previous owner are dropped."""
        if self.directory is None:
            return
        previous = self._owner(self._me.pid)
        if previous != self._me:
            # No record: the files, if any, predate this process's first write too.
            self._drop_gauges(self._me.pid)
        path = self._owner_path(self._me.pid)
        scratch = f"{path}.tmp"
        with open(scratch, "w") as fh:
            fh.write(self._me.to_text())
        os.replace(scratch, path)

    def sweep(self) -> list[int]:
        """Drop the per-process gauges of every dead process; returns the pids whose
        files it removed (a dead worker's counters stay, so it is reported once)."""
        if self.directory is None:
            return []
        dead: list[int] = []
        for pid in sorted(self._pids()):
            if pid == self._me.pid:
                continue
            owner = self._owner(pid)
            alive = owner.alive() if owner is not None else ProcessIdentity(pid, None).alive()
            if alive:
                continue
            dropped = self._drop_gauges(pid)
            if owner is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self._owner_path(pid))
                    dropped += 1
            if dropped:
                dead.append(pid)
        if dead:
            log.info("dropped the per-process gauges of dead workers %s", dead)
        return dead

    # --- files ------------------------------------------------------------------------

    def _pids(self) -> set[int]:
        assert self.directory is not None
        pids: set[int] = set()
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return pids
        for name in names:
            match = _DB_FILE.match(name)
            if match:
                pids.add(int(match.group(1)))
            elif name.startswith(OWNER_PREFIX) and name[len(OWNER_PREFIX) :].isdecimal():
                pids.add(int(name[len(OWNER_PREFIX) :]))
        return pids

    def _owner_path(self, pid: int) -> str:
        assert self.directory is not None
        return os.path.join(self.directory, f"{OWNER_PREFIX}{pid}")

    def _owner(self, pid: int) -> ProcessIdentity | None:
        try:
            with open(self._owner_path(pid)) as fh:
                identity = ProcessIdentity.from_text(fh.read())
        except FileNotFoundError:
            return None
        return identity if identity is not None and identity.pid == pid else None

    def _drop_gauges(self, pid: int) -> int:
        """Remove the pid's per-process gauge files; returns how many there were."""
        assert self.directory is not None
        dropped = 0
        for mode in PER_PROCESS_GAUGE_MODES:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(self.directory, f"gauge_{mode}_{pid}.db"))
                dropped += 1
        return dropped
