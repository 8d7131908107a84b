"""service.logs.log_setup: after BentoML and MLflow have configured logging their way,
every record of the process comes out once, as one JSON object per line on stderr,
redacted; printed lines and uncaught exceptions too.

Run in a child process: it takes over the process's logging, as it does in a worker.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SECRET = "tok-SECRET-123"

SCRIPT = textwrap.dedent(
    f"""
    import logging, sys, threading, warnings
    from bentoml._internal.log import configure_server_logging
    configure_server_logging()  # what a BentoML worker does before importing the service
    import mlflow  # gives MLflow's loggers a handler of their own
    from service.logs import log_redaction, log_setup
    log_redaction.protect({{"STAGESERVE_ADMIN_TOKEN": "{SECRET}"}})
    log_setup.configure(log_setup.LogOptions(sys.argv[1], "INFO", True))
    log_setup.configure(log_setup.LogOptions(sys.argv[1], "INFO", True))  # idempotent
    logging.getLogger("stageserve.test").info("token %s", "{SECRET}")
    logging.getLogger("stageserve.test").debug("below the level")
    logging.getLogger("bentoml.serve").info("bentoml line")
    logging.getLogger("mlflow.store").info("mlflow line")
    logging.getLogger("uvicorn.error").warning("uvicorn line")
    logging.getLogger("circus").warning("circus line")
    logging.getLogger("urllib3").info("library info below its default")
    warnings.warn("a python warning")
    print("a printed line")
    print("a line on stderr", file=sys.stderr)
    thread = threading.Thread(target=lambda: 1 / 0, name="boom")
    thread.start(); thread.join()
    raise RuntimeError("uncaught")
    """
)


def run(log_format: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, log_format],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "BENTOML_DO_NOT_TRACK": "true"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_json_every_line_of_every_library_is_one_object_on_stderr() -> None:
    done = run("json")
    assert done.returncode == 1  # the uncaught exception
    assert done.stdout == ""  # BentoML's handler wrote to stdout: now everything is on stderr
    records = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    by_message = {r["message"]: r for r in records}
    assert SECRET not in done.stderr
    assert by_message["token ***"]["logger"] == "stageserve.test"
    for message, logger in [
        ("bentoml line", "bentoml.serve"),
        ("mlflow line", "mlflow.store"),
        ("uvicorn line", "uvicorn.error"),
        ("circus line", "circus"),
        ("a printed line", "stdout"),
        ("a line on stderr", "stderr"),
    ]:
        assert by_message[message]["logger"] == logger
    messages = [r["message"] for r in records]
    assert len(messages) == len(set(messages))  # BentoML's doubled loggers print once
    assert "below the level" not in messages
    assert "library info below its default" not in messages
    assert any("a python warning" in m and r["logger"] == "py.warnings"
               for m, r in by_message.items())  # fmt: skip
    crashes = [r for r in records if r["logger"] == "stageserve.crash"]
    assert [r["message"] for r in crashes] == [
        "uncaught ZeroDivisionError in thread boom",
        "uncaught RuntimeError",
    ]
    assert all(r["level"] == "CRITICAL" and "Traceback" in r["exc"] for r in crashes)
    assert {r["pid"] for r in records} == {records[0]["pid"]}
    assert all(r["time"].endswith("Z") and len(r["time"]) == 24 for r in records)


def test_text_lines_share_the_format_and_the_stream() -> None:
    done = run("text")
    assert done.stdout == "a printed line\n"  # text: a print stays a print
    lines = done.stderr.splitlines()
    for message, logger in [("bentoml line", "bentoml.serve"), ("mlflow line", "mlflow.store")]:
        (line,) = [x for x in lines if x.endswith(message)]
        assert f" INFO {logger}[" in line and line[23] == "Z"
    assert SECRET not in done.stderr
    assert "Traceback (most recent call last):" in done.stderr  # Python's own, in text
