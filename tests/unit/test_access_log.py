"""service.logs.access_log: what one prediction request's access record says."""

from __future__ import annotations

import json
import logging

import pytest

from service.logs.access_log import (
    MAX_PATH_CHARS,
    AccessLog,
    access_entry,
    bounded_path,
    request_id,
    text_value,
)
from service.logs.log_format import JsonFormatter


@pytest.mark.parametrize(
    "header, expected",
    [
        ("abc-123", "abc-123"),
        ("req:2026.11_29-x", "req:2026.11_29-x"),
        ("a" * 128, "a" * 128),
        ("a" * 129, "-"),
        ("", "-"),
        (None, "-"),
        ("has space", "-"),
        ("new\nline", "-"),
        ("é", "-"),
        ("a/b", "-"),
    ],
)
def test_request_id_is_the_clients_when_well_formed(header: str | None, expected: str) -> None:
    assert request_id(header) == expected


def test_the_path_is_kept_as_sent_and_bounded() -> None:
    assert bounded_path(b"/models/a%20b/invocations") == "/models/a%20b/invocations"
    long = bounded_path(b"/models/" + b"x" * 1000 + b"/invocations")
    assert len(long) == MAX_PATH_CHARS and long.endswith("...")


def test_text_values_cannot_forge_a_line_or_split_a_field() -> None:
    assert text_value("diabetes") == "diabetes"
    assert text_value("a b\nc\té") == "a\\x20b\\nc\\t\\xe9"


def entry(**changes: object):
    values: dict[str, object] = {
        "method": "POST",
        "raw_path": b"/invocations",
        "status": 200,
        "model": "diabetes",
        "target": "Staging",
        "version": 2,
        "request_id_header": "abc-123",
        "latency_s": 0.012345,
    }
    values.update(changes)
    return access_entry(**values)  # type: ignore[arg-type]


def test_a_success_as_text_and_as_fields() -> None:
    e = entry()
    assert e.message() == (
        "POST /invocations 200 model=diabetes target=Staging version=2 "
        "request_id=abc-123 latency_ms=12.35"
    )
    assert e.fields() == {
        "fields": {
            "method": "POST",
            "path": "/invocations",
            "status": 200,
            "model": "diabetes",
            "target": "Staging",
            "version": 2,
            "request_id": "abc-123",
            "latency_ms": 12.345,
        }
    }


def test_a_refusal_before_routing_says_what_it_does_not_know() -> None:
    e = entry(status=404, model="no such\nmodel", target=None, version=None, request_id_header=None)
    assert e.message().startswith(
        "POST /invocations 404 model=no\\x20such\\nmodel target=- version=- request_id=-"
    )
    assert e.fields()["fields"]["target"] is None


def test_access_log_records_on_its_logger_with_the_fields() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("tests.access")
    logger.handlers, logger.propagate = [Keep()], False
    logger.setLevel(logging.INFO)
    try:
        AccessLog(logger).record(entry())
    finally:
        logger.handlers = []
    (rec,) = records
    data = json.loads(JsonFormatter().format(rec))
    assert data["level"] == "INFO" and data["status"] == 200 and data["version"] == 2
    assert data["message"].startswith("POST /invocations 200 model=diabetes")
    assert logging.getLogger("stageserve.access") is AccessLog()._log
