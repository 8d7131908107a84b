"""Readiness of the whole gateway, not only of the worker that answers the probe.

A readiness probe reaches one worker; with several, a worker that has loaded its models
would say "ready" while another is still loading, and a load balancer would then send
requests that the other worker can only refuse (503). So each worker posts a marker file
``ready-<pid>`` in the runtime folder the workers share while it is ready, and the
gateway is ready when as many live workers have posted one as the gateway runs. A worker
that dies leaves a marker with a dead pid, which does not count and is removed.
"""

from __future__ import annotations

import contextlib
import os

PREFIX = "ready-"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (signal 0 checks without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ReadinessBoard:
    def __init__(self, folder: str | None, workers: int, pid: int | None = None) -> None:
        self._folder = folder if workers > 1 else None
        self._workers = workers
        self._pid = pid if pid is not None else os.getpid()

    def publish(self, ready: bool) -> None:
        """Post or withdraw this worker's marker."""
        if self._folder is None:
            return
        path = os.path.join(self._folder, f"{PREFIX}{self._pid}")
        if ready:
            os.makedirs(self._folder, exist_ok=True)
            with open(path, "w"):
                pass
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)

    def ready_workers(self) -> int:
        if self._folder is None:
            return self._workers
        count = 0
        try:
            names = os.listdir(self._folder)
        except FileNotFoundError:
            return 0
        for name in names:
            if not name.startswith(PREFIX) or not name[len(PREFIX) :].isdigit():
                continue
            if pid_alive(int(name[len(PREFIX) :])):
                count += 1
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(self._folder, name))
        return count

    def unready_reason(self) -> str | None:
        """None when every worker is ready, else why not."""
        ready = self.ready_workers()
        if ready >= self._workers:
            return None
        return f"{ready} of {self._workers} workers have loaded their required targets"
