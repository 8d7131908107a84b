"""How one log record reads: a text line or a JSON object, with one timestamp format.

Both formats stamp records alike (ISO 8601, UTC, milliseconds: 2026-11-29T22:59:01.123Z)
whichever library logged them, so lines from stageserve, BentoML, uvicorn and MLflow
sort and grep together. The record reaching a formatter has already been redacted by
the log record factory (service/logs/log_redaction.py); the structured fields a
stageserve record adds (``extra=fields(model=...)``) are redacted here, since the
factory never sees them. Pure: no handler, no stream.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable

from registry_watcher.redact import redact

TEXT = "text"
JSON_LINES = "json"
LOG_FORMATS = (TEXT, JSON_LINES)

# The attribute of a record holding its structured fields (see ``fields``).
FIELDS_ATTRIBUTE = "fields"
# Keys every JSON record has; a structured field never replaces one of them.
CORE_KEYS = ("time", "level", "logger", "message", "pid", "exc", "stack")

Scalar = str | int | float | bool | None


def fields(**values: Scalar) -> dict[str, dict[str, Scalar]]:
    """The ``extra`` of a record with structured fields: ``log.info(msg, extra=fields(model=m))``.

    They are keys of the JSON object (not of the text line, whose message says it all).
    """
    return {FIELDS_ATTRIBUTE: values}


def iso_utc(created: float) -> str:
    """A record's time as 2026-11-29T22:59:01.123Z."""
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def rendered_traceback(record: logging.LogRecord) -> str | None:
    """The traceback of a record's exception as text (not redacted), if it has one."""
    if record.exc_info and record.exc_info[0] is not None:
        return "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
    return None


def exception_text(record: logging.LogRecord) -> str | None:
    """The rendered traceback of a record, if it has one (redacted)."""
    if record.exc_text:  # rendered and redacted by the record factory
        return record.exc_text
    text = rendered_traceback(record)
    return redact(text) if text is not None else None


def message_of(record: logging.LogRecord) -> str:
    """The record's message, or (a broken format string) its format and arguments as written."""
    try:
        return record.getMessage()
    except Exception:  # a broken format string: show it as written
        return f"{record.msg} {record.args}"


def structured_fields(record: logging.LogRecord) -> dict[str, Scalar]:
    values = getattr(record, FIELDS_ATTRIBUTE, None)
    if not isinstance(values, dict):
        return {}
    return {
        str(key): redact(value) if isinstance(value, str) else value
        for key, value in values.items()
        if key not in CORE_KEYS
    }


class TextFormatter(logging.Formatter):
    """``2026-11-29T22:59:01.123Z INFO stageserve.loader[4242]: loaded ...`` and the
    traceback, if any, on the lines after."""

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{iso_utc(record.created)} {record.levelname} "
            f"{record.name}[{record.process}]: {message_of(record)}"
        )
        exc = exception_text(record)
        if exc:
            line = f"{line}\n{exc}"
        if record.stack_info:
            line = f"{line}\n{record.stack_info}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: time, level, logger, message, pid, the
    record's structured fields, and exc (the rendered traceback) / stack when present."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "time": iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": message_of(record),
            "pid": record.process,
        }
        data.update(structured_fields(record))
        exc = exception_text(record)
        if exc:
            data["exc"] = exc
        if record.stack_info:
            data["stack"] = record.stack_info
        return json.dumps(data, ensure_ascii=False, default=str)


FORMATTERS: dict[str, Callable[[], logging.Formatter]] = {
    TEXT: TextFormatter,
    JSON_LINES: JsonFormatter,
}


def formatter_for(log_format: str) -> logging.Formatter:
    """The formatter of ``text`` or ``json`` (a KeyError for anything else)."""
    return FORMATTERS[log_format]()
