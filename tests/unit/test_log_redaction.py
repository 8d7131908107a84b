"""service.logs.log_redaction: log records of any logger come out without credentials."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from registry_watcher.redact import Redactor
from service.logs.log_redaction import RedactingFilter

SECRET = "S3cr3t-XYZ"
URL = f"http://user:{SECRET}@127.0.0.1:5000/api"


@pytest.fixture
def captured() -> tuple[logging.Logger, io.StringIO]:
    """A library-like logger that does not propagate, with its own handler."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("tests.some_library")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler.addFilter(RedactingFilter(Redactor(["admin-token-123"])))
    yield logger, stream
    logger.handlers = []


def test_messages_and_their_arguments_are_redacted(captured) -> None:
    logger, stream = captured
    logger.warning("request to %s failed", URL)
    logger.info("token admin-token-123 presented")
    text = stream.getvalue()
    assert SECRET not in text and "admin-token-123" not in text
    assert "http://***@127.0.0.1:5000/api" in text


def test_tracebacks_are_redacted(captured) -> None:
    logger, stream = captured
    try:
        raise ConnectionError(f"cannot reach {URL}")
    except ConnectionError:
        logger.exception("poll failed")
    text = stream.getvalue()
    assert "Traceback" in text and "ConnectionError" in text
    assert SECRET not in text


def test_records_without_secrets_keep_their_arguments() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s %s", ("a", "b"), None)
    RedactingFilter(Redactor()).filter(record)
    assert record.args == ("a", "b")  # uvicorn's access formatter reads them


def test_the_record_factory_covers_loggers_configured_later(tmp_path) -> None:
    """What a worker gets: BentoML replaces handlers after the factory is installed."""
    script = f"""
import logging, logging.config, os
os.environ["MLFLOW_TRACKING_URI"] = "http://u:{SECRET}@h:1"
from service.logs import log_redaction
log_redaction.protect(os.environ)
logging.config.dictConfig({{"version": 1, "handlers": {{"h": {{"class": "logging.StreamHandler",
    "stream": "ext://sys.stdout"}}}}, "root": {{"handlers": ["h"], "level": "INFO"}}}})
logging.getLogger("urllib3.connectionpool").warning("retrying %s", "http://u:{SECRET}@h:1/x")
logging.getLogger("mlflow").warning("the password is {SECRET}")
import warnings
warnings.warn("deprecated call to http://u:{SECRET}@h:1")
print("done")
"""
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    text = out.stdout + out.stderr
    assert "done" in text, text
    assert "retrying http://***@h:1/x" in text and "deprecated call" in text
    assert SECRET not in text
