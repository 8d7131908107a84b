"""The runtime folder of a plain ``bentoml serve``, and the sweep of dead ones.

``stageserve serve`` gives its workers one runtime folder per port, reused by the next
start. A plain ``bentoml serve`` (a Bento container) has no such launcher: its workers
share a folder named after their parent, BentoML's supervisor, which no stageserve code
sees stop. So the folder is named with the supervisor's pid *and* start time, and every
start removes the folders whose supervisor is gone (pids are reused; pid plus start time
is not).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tempfile

from service.ops.processes import ProcessIdentity, start_ticks

log = logging.getLogger("stageserve.run_dirs")

PREFIX = "stageserve-run-"
_NAME = re.compile(r"^stageserve-run-(\d+)(?:-(\d+))?$")  # the start time is new


def plain_serve_runtime_dir(supervisor_pid: int, tmp: str | None = None) -> str:
    """The folder for the workers of ``supervisor_pid``, after sweeping dead ones."""
    tmp = tmp or tempfile.gettempdir()
    sweep(tmp)
    start = start_ticks(supervisor_pid)
    suffix = str(supervisor_pid) if start is None else f"{supervisor_pid}-{start}"
    return os.path.join(tmp, PREFIX + suffix)


def sweep(tmp: str) -> list[str]:
    """Remove this user's runtime folders in ``tmp`` whose supervisor has stopped."""
    if start_ticks(os.getpid()) is None:
        return []  # no /proc: liveness cannot be told apart from pid reuse; keep all
    try:
        names = os.listdir(tmp)
    except OSError:
        return []
    removed = []
    for name in names:
        match = _NAME.match(name)
        if match is None:
            continue
        path = os.path.join(tmp, name)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            continue
        pid, start = int(match[1]), match[2]
        gone = not ProcessIdentity(pid, None if start is None else int(start)).alive()
        if gone:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(name)
    if removed:
        log.info("removed %d runtime folder(s) of stopped gateways in %s", len(removed), tmp)
    return removed
