"""One log handler per process, in the chosen format, for every library's records.

BentoML configures logging in its supervisor and in each worker (``dictConfig``, in
``bentoml._internal.log.configure_server_logging``) before it imports the service
module, and MLflow gives its loggers a handler of its own when it is imported. Each
has its own line format and stream (BentoML's on stdout, MLflow's on stderr). So once
they are done, at the service module's import (service/process_setup.py) and again
when a worker starts its gateway, this module takes over: the root logger gets the
one handler (stderr, the format of ``--log-format``) and every other stream handler
is removed, the loggers that had one propagating to the root instead. Records are
redacted before they reach it (service/logs/log_redaction.py). The ``stageserve``
command does the same in its own process (the demo's seeding logs too).

With JSON logs, lines printed outside logging become records too
(service/logs/stray_lines.py), and an uncaught exception is one record with its
traceback rather than a dozen bare lines.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType

from service import config
from service.logs import stray_lines
from service.logs.log_format import JSON_LINES, TEXT, formatter_for
from service.logs.log_levels import logger_levels

STDERR_FD = 2


@dataclass(frozen=True)
class LogOptions:
    """How a process logs: ``--log-format``, ``--log-level``, ``--access-log``."""

    log_format: str = TEXT
    level: str = "INFO"
    access_log: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LogOptions:
        """From the environment; a ConfigError names a variable that cannot be used."""
        return cls(config.log_format(env), config.log_level(env), config.access_log(env))

    @classmethod
    def lenient(cls, env: Mapping[str, str]) -> LogOptions:
        """From the environment, the defaults for what is unusable (refused later, with
        a message, by whoever reads the settings)."""
        try:
            return cls.from_env(env)
        except config.ConfigError:
            return cls()


def write_all(fd: int, data: bytes) -> None:
    """One ``write`` for a line when the descriptor takes it whole: lines of several
    processes sharing the descriptor do not interleave (up to the pipe's atomic size)."""
    while data:
        written = os.write(fd, data)
        data = data[written:]


class LineHandler(logging.Handler):
    """Writes each formatted record to a file descriptor, one write per record, with no
    Python buffer between (the supervisor and the workers share the descriptor)."""

    def __init__(self, fd: int = STDERR_FD) -> None:
        super().__init__()
        self.fd = fd

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            write_all(self.fd, line.encode("utf-8", "backslashreplace"))
        except Exception:
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        # Straight to the descriptor: sys.stderr may be a line logger leading back here.
        if logging.raiseExceptions:
            note = f"logging error in {record.name}: {traceback.format_exc(limit=3)}"
            with contextlib.suppress(OSError):
                write_all(self.fd, note.encode("utf-8", "backslashreplace"))


class MlflowQuietThreads(logging.Filter):
    """MLflow silences its telemetry thread's records with a filter on its own handler,
    which is removed here: the same rule, on the handler that replaces it."""

    def filter(self, record: logging.LogRecord) -> bool:
        utils = sys.modules.get("mlflow.utils.logging_utils")
        quiet = getattr(utils, "should_suppress_logs_in_thread", None)
        try:
            return not (quiet is not None and quiet.get())
        except Exception:
            return True


_handler: LineHandler | None = None


def _stream_handlers(logger: logging.Logger) -> list[logging.Handler]:
    return [
        h
        for h in logger.handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]


def configure(options: LogOptions) -> LineHandler:
    """Route every record of this process to one handler in ``options``' format, at the
    levels of service/logs/log_levels.py. Idempotent: run again after anything that
    configures logging."""
    global _handler
    # MLflow, imported after this, keeps its loggers handler-less (propagating here).
    os.environ["MLFLOW_CONFIGURE_LOGGING"] = "false"
    if _handler is None:
        _handler = LineHandler()
        _handler.addFilter(MlflowQuietThreads())
    _handler.setFormatter(formatter_for(options.log_format))
    root = logging.getLogger()
    for handler in _stream_handlers(root):
        root.removeHandler(handler)
    if _handler not in root.handlers:
        root.addHandler(_handler)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and _stream_handlers(logger):
            for handler in _stream_handlers(logger):
                logger.removeHandler(handler)
            logger.propagate = True
    for name, level in logger_levels(options.level, options.access_log).items():
        logging.getLogger(name or None).setLevel(level)
    if options.log_format == JSON_LINES:
        stray_lines.capture()
        _log_uncaught_exceptions()
    return _handler


def _log_uncaught_exceptions() -> None:
    crash = logging.getLogger("stageserve.crash")

    def on_uncaught(
        kind: type[BaseException], value: BaseException, tb: TracebackType | None
    ) -> None:
        crash.critical("uncaught %s", kind.__name__, exc_info=(kind, value, tb))

    def on_thread(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        crash.critical(
            "uncaught %s in thread %s",
            args.exc_type.__name__,
            name,
            exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
        )

    sys.excepthook = on_uncaught
    threading.excepthook = on_thread
