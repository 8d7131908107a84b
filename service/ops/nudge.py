"""Tell every worker of this gateway to read the registry now.

BentoML workers share nothing, and a webhook lands on one of them. Each worker binds a
Unix datagram socket in a folder all workers share (``STAGESERVE_RUNTIME_DIR``, made
once by the CLI or by the BentoML supervisor when it imports the service); a worker
that receives a webhook sends one datagram to every other socket there. Receiving is a
blocking ``recv`` on a thread: no polling, no shared state, nothing to clean up but the
socket file. A killed worker leaves its file behind: ``sweep`` (at start and after every
registry poll) and the first send that fails remove it. Whether a file is live is asked
of the socket itself (connecting to a file nobody has bound is refused), which a pid
given to another process cannot fake.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import socket
import threading
from collections.abc import Callable

log = logging.getLogger("stageserve.nudge")

MESSAGE = b"refresh"


class WorkerNudge:
    def __init__(self, directory: str, on_nudge: Callable[[], None]) -> None:
        self.directory = directory
        self.path = os.path.join(directory, f"worker-{os.getpid()}.sock")
        self._on_nudge = on_nudge
        self._receiver: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        os.makedirs(self.directory, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._receiver.bind(self.path)
        self.sweep()
        self._thread = threading.Thread(target=self._run, name="worker-nudge", daemon=True)
        self._thread.start()

    def broadcast(self) -> int:
        """Nudge every other worker; returns how many were reached."""
        reached = 0
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.setblocking(False)
            for path in self._others():
                try:
                    sender.sendto(MESSAGE, path)
                    reached += 1
                except BlockingIOError:
                    reached += 1  # its queue is full: a nudge is already waiting there
                except (ConnectionRefusedError, FileNotFoundError):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)  # a worker that died without cleaning up
                except OSError as exc:
                    log.warning("could not nudge %s: %s", path, exc)
        return reached

    def sweep(self) -> list[str]:
        """Remove the socket files of workers that are gone; returns their paths."""
        removed = []
        for path in self._others():
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
                try:
                    probe.connect(path)
                    continue
                except (ConnectionRefusedError, FileNotFoundError):
                    pass
                except OSError as exc:
                    log.debug("could not probe %s: %s", path, exc)
                    continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed.append(path)
        return removed

    def _others(self) -> list[str]:
        paths = glob.glob(os.path.join(self.directory, "worker-*.sock"))
        return [path for path in paths if path != self.path]

    def stop(self) -> None:
        receiver, self._receiver = self._receiver, None
        if receiver is not None:
            with contextlib.suppress(OSError):
                receiver.shutdown(socket.SHUT_RDWR)
            receiver.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _run(self) -> None:
        receiver = self._receiver
        while receiver is not None and self._receiver is receiver:
            try:
                message = receiver.recv(64)
            except OSError:
                return
            if message == MESSAGE:
                self._on_nudge()
