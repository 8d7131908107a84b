"""Lines printed outside logging, made log records (with ``--log-format json``).

Some output never goes through logging: MLflow's ``print``s while the demo registers
its model, a model's own ``print`` in ``predict``, Python's "Exception ignored in ..."
notes. With JSON logs each such line would break a reader that parses every line, so
``sys.stdout`` and ``sys.stderr`` are replaced by this stream: every complete line
written to it becomes one INFO record of the ``stdout`` or ``stderr`` logger (redacted
and formatted like any other record; the level says nothing of what the line means).
What bypasses Python's streams (a C extension writing to the file descriptor, the
interpreter's fatal errors) is not caught.
"""

from __future__ import annotations

import io
import logging
import threading


class LineLogger(io.TextIOBase):
    """A text stream that logs each line written to it on ``logger`` at ``level``."""

    def __init__(self, logger: logging.Logger, level: int, fd: int) -> None:
        super().__init__()
        self._logger = logger
        self._level = level
        self._fd = fd
        self._pending = ""
        self._lock = threading.Lock()

    encoding = "utf-8"  # what a caller checking the stream's encoding may write

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        with self._lock:
            lines = (self._pending + text).split("\n")
            self._pending = lines.pop()
        for line in lines:
            if line.strip():
                self._logger.log(self._level, "%s", line.rstrip("\r"))
        return len(text)

    def flush(self) -> None:
        """Nothing is held but a line not yet ended: it waits for its end."""


def capture(stdout_fd: int = 1, stderr_fd: int = 2) -> None:
    """Replace ``sys.stdout`` and ``sys.stderr`` by line loggers (idempotent)."""
    import sys

    for name, fd in (("stdout", stdout_fd), ("stderr", stderr_fd)):
        if isinstance(getattr(sys, name), LineLogger):
            continue
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)  # a printed line is never dropped for its level
        setattr(sys, name, LineLogger(logger, logging.INFO, fd))
