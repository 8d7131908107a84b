"""Every log record of the process redacted, whichever library logs it.

MLflow, requests/urllib3 and BentoML log URLs and exception texts that can carry the
registry's credentials. Filters on loggers only see records logged on that very logger,
and BentoML replaces the handlers when it configures a worker's logging, so the
redaction sits in the log record factory: every record of every logger passes through
it once, whenever handlers are (re)configured. Exception tracebacks and stack traces are
rendered and redacted there too, and Python warnings go through logging.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from registry_watcher import redact
from service.logs.log_format import message_of, rendered_traceback


class RedactingFilter(logging.Filter):
    """Rewrites a record's message, traceback and stack text without credentials."""

    def __init__(self, redactor: Callable[[str], str] = redact.redact) -> None:
        super().__init__()
        self._redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = message_of(record)
        clean = self._redact(message)
        if clean != message:  # otherwise left alone: some formatters read record.args
            record.msg, record.args = clean, None
        if not record.exc_text and (text := rendered_traceback(record)) is not None:
            record.exc_text = self._redact(text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        return True


_installed = False


def install(redactor: Callable[[str], str] = redact.redact) -> None:
    """Redact every record created from now on in this process (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    redacting = RedactingFilter(redactor)
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redacting.filter(record)
        return record

    logging.setLogRecordFactory(factory)
    logging.captureWarnings(True)  # warnings.warn texts reach stderr through logging


def protect(env: Mapping[str, str]) -> None:
    """This process's secrets (from its environment) kept out of answers and logs."""
    redact.configure(redact.configured_secrets(env))
    install()
