"""service.logs.log_format: each record as a text line or one JSON object, one timestamp
format, redacted."""

from __future__ import annotations

import json
import logging
import re
import sys

from registry_watcher.redact import Redactor
from service.logs.log_format import (
    JsonFormatter,
    TextFormatter,
    fields,
    formatter_for,
    iso_utc,
)
from service.logs.log_redaction import RedactingFilter

SECRET = "S3cr3t-XYZ"
ISO_MS_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def record(
    msg: str = "hello %s",
    args: tuple[object, ...] = ("world",),
    level: int = logging.INFO,
    name: str = "stageserve.test",
    exc_info: object = None,
    extra: dict[str, object] | None = None,
) -> logging.LogRecord:
    rec = logging.LogRecord(name, level, __file__, 1, msg, args, exc_info)  # type: ignore[arg-type]
    for key, value in (extra or {}).items():
        setattr(rec, key, value)
    return rec


def test_iso_utc_has_milliseconds_and_z() -> None:
    assert iso_utc(0.0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(1795993141.1239) == "2026-11-29T22:59:01.123Z"
    assert ISO_MS_UTC.match(iso_utc(1795993141.9999))


def test_json_has_every_core_field() -> None:
    rec = record()
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    data = json.loads(line)
    assert data == {
        "time": iso_utc(rec.created),
        "level": "INFO",
        "logger": "stageserve.test",
        "message": "hello world",
        "pid": rec.process,
    }
    assert ISO_MS_UTC.match(data["time"])


def test_json_adds_structured_fields_but_never_over_core_ones() -> None:
    extra = fields(model="diabetes", target="Staging", version=2, message="not this", pid=0)
    data = json.loads(JsonFormatter().format(record(extra=extra)))
    assert (data["model"], data["target"], data["version"]) == ("diabetes", "Staging", 2)
    assert data["message"] == "hello world" and data["pid"] != 0


def test_json_renders_the_traceback_on_one_line() -> None:
    try:
        raise ValueError("bad value")
    except ValueError:
        rec = record(level=logging.ERROR, exc_info=sys.exc_info())
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    exc = json.loads(line)["exc"]
    assert exc.startswith("Traceback (most recent call last):")
    assert exc.endswith("ValueError: bad value")


def test_json_keeps_unicode_readable_and_escapes_controls() -> None:
    line = JsonFormatter().format(record("modèle %s", ("✓\nsecond line",)))
    assert "modèle" in line and "\n" not in line
    assert json.loads(line)["message"] == "modèle ✓\nsecond line"


def test_a_secret_in_a_message_an_argument_a_traceback_or_a_field_is_redacted() -> None:
    url = f"http://user:{SECRET}@registry:5000/api"
    redacting = RedactingFilter(Redactor([SECRET]))  # what the record factory runs
    try:
        raise ConnectionError(f"cannot reach {url}")
    except ConnectionError:
        rec = record("poll of %s failed", (url,), logging.WARNING, exc_info=sys.exc_info())
    rec.fields = {"source": url}  # a field the factory does not see
    redacting.filter(rec)
    for formatter in (JsonFormatter(), TextFormatter()):
        text = formatter.format(rec)
        assert SECRET not in text, text
        assert "http://***@registry:5000/api" in text
    data = json.loads(JsonFormatter().format(rec))
    assert "ConnectionError" in data["exc"] and data["source"] == "http://***@registry:5000/api"


def test_text_line_has_the_same_time_level_logger_and_pid() -> None:
    rec = record(name="bentoml.serve", level=logging.WARNING)
    line = TextFormatter().format(rec)
    assert line == f"{iso_utc(rec.created)} WARNING bentoml.serve[{rec.process}]: hello world"


def test_text_puts_the_traceback_after_the_line() -> None:
    try:
        raise KeyError("k")
    except KeyError:
        rec = record(exc_info=sys.exc_info())
    first, *rest = TextFormatter().format(rec).split("\n")
    assert first.endswith(f"stageserve.test[{rec.process}]: hello world")
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "KeyError: 'k'"


def test_a_broken_format_string_is_shown_not_raised() -> None:
    data = json.loads(JsonFormatter().format(record("%d apples", ("many",))))
    assert "%d apples" in data["message"]


def test_formatter_for_names_the_two_formats() -> None:
    assert isinstance(formatter_for("text"), TextFormatter)
    assert isinstance(formatter_for("json"), JsonFormatter)
