"""Readiness of the whole gateway, not only of the worker that answers the probe.

A readiness probe reaches one worker; with several, a worker that has loaded its models
would say "ready" while another is still loading, and a load balancer would then send
requests that the other worker can only refuse (503). So each worker posts a marker file
``ready-<pid>`` in the runtime folder the workers share while it is ready, and the
gateway is ready when as many live workers have posted one as the gateway runs.

A replacement worker that loads its models before it takes connections (see
service/lifecycle/warm_start.py) posts ``standby-<pid>`` meanwhile: it refuses nothing, so it does
not make the gateway unready as long as one worker is ready.

A marker holds its worker's identity, pid and start time (service/ops/processes.py): the
marker of a dead worker whose pid was given to another process does not count, and any
reader removes it. Markers are written atomically, so a reader never sees half of one.
"""

from __future__ import annotations

import contextlib
import os
import threading

from service.ops.processes import ProcessIdentity

PREFIX = "ready-"
STANDBY_PREFIX = "standby-"


class ReadinessBoard:
    def __init__(
        self,
        folder: str | None,
        workers: int,
        identity: ProcessIdentity | None = None,
    ) -> None:
        self._folder = folder if workers > 1 else None
        self._workers = workers
        self._me = identity or ProcessIdentity.current()

    def publish(self, ready: bool) -> None:
        """Post or withdraw this worker's ready marker (cheap when nothing changes, so it
        may be called on every poll: a marker removed by mistake comes back)."""
        self._post(PREFIX, ready)

    def standby(self, waiting: bool) -> None:
        """Post or withdraw this worker's standby marker (loading off the socket)."""
        self._post(STANDBY_PREFIX, waiting)

    def ready_workers(self) -> int:
        if self._folder is None:
            return self._workers
        return len(self._live(PREFIX))

    def other_ready_workers(self) -> int:
        """Live ready workers other than this one (0 with a single worker)."""
        if self._folder is None:
            return 0
        return len(self._live(PREFIX) - {self._me.pid})

    def unready_reason(self) -> str | None:
        """None when every worker that takes connections is ready, else why not."""
        ready = self.ready_workers()
        if ready >= self._workers:
            return None
        standby = len(self._live(STANDBY_PREFIX)) if self._folder is not None else 0
        if ready >= 1 and ready + standby >= self._workers:
            return None
        return f"{ready} of {self._workers} workers have loaded their required targets"

    # --- files ------------------------------------------------------------------------

    def _post(self, prefix: str, on: bool) -> None:
        if self._folder is None:
            return
        path = os.path.join(self._folder, f"{prefix}{self._me.pid}")
        if not on:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            return
        text = self._me.to_text()
        if _read(path) == text:
            return
        os.makedirs(self._folder, exist_ok=True)
        scratch = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(scratch, "w") as fh:
            fh.write(text)
        os.replace(scratch, path)

    def _live(self, prefix: str) -> set[int]:
        """Pids of live workers with a marker of this kind; removes the others."""
        assert self._folder is not None
        try:
            names = os.listdir(self._folder)
        except FileNotFoundError:
            return set()
        live: set[int] = set()
        for name in names:
            suffix = name[len(prefix) :]
            if not name.startswith(prefix) or not (suffix.isascii() and suffix.isdigit()):
                continue
            path = os.path.join(self._folder, name)
            text = _read(path)
            if text is None:
                continue  # withdrawn while we looked
            identity = ProcessIdentity.from_text(text)
            if identity is not None and identity.pid == int(suffix) and identity.alive():
                live.add(identity.pid)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
        return live


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read()
    except (FileNotFoundError, IsADirectoryError):
        return None
