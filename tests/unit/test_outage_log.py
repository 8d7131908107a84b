"""registry_watcher.outage: an outage said in full once, then in one short line per
poll, and its end."""

from __future__ import annotations

import logging

from registry_watcher.outage import OutageLog, registry_place, short_reason

LONG_URL = "http://127.0.0.1:5000/api/2.0/mlflow/registered-models/search?filter=" + "x" * 400


def mlflow_like_error() -> Exception:
    """What a refused connection looks like through MLflow's REST client."""
    try:
        try:
            try:
                raise ConnectionRefusedError(111, "Connection refused")
            except ConnectionRefusedError as refused:
                raise ConnectionError(f"Max retries exceeded with url: {LONG_URL}") from refused
        except ConnectionError as exc:

            class MlflowException(Exception):
                pass

            raise MlflowException(f"API request to {LONG_URL} failed with exception {exc}") from exc
    except Exception as exc:
        return exc
    raise AssertionError


def http_error() -> Exception:
    class MlflowException(Exception):
        pass

    return MlflowException(f"API request to {LONG_URL} failed with error code 503 != 200")


def test_the_reason_names_the_cause_not_the_url() -> None:
    assert short_reason(mlflow_like_error()) == "ConnectionError (ConnectionRefusedError)"
    assert short_reason(http_error()) == "HTTP 503"
    assert short_reason(TimeoutError("x")) == "TimeoutError"


def test_the_place_is_short_and_without_credentials() -> None:
    assert registry_place("http://u:pw@127.0.0.1:5000/some/path?x=1") == "http://127.0.0.1:5000"
    assert registry_place("https://mlflow.example.com") == "https://mlflow.example.com"
    assert registry_place("postgresql://u:pw@db/mlflow") == "postgresql://***@db/mlflow"
    assert registry_place("sqlite:///" + "d/" * 100 + "mlflow.db").endswith("...")
    assert len(registry_place("sqlite:///" + "d/" * 100)) == 60
    assert registry_place(None) == "the registry"


def test_an_outage_is_said_in_full_once_then_shortly_then_its_end() -> None:
    outage = OutageLog("http://user:pw@127.0.0.1:5000")
    wall = 1795993141.0  # 2026-11-29T22:59:01Z
    (first,) = outage.failed(mlflow_like_error(), 1, wall, 100.0)
    assert first[0] == logging.WARNING
    assert first[1].startswith("registry poll failed: MlflowException: API request to http://")
    assert "Max retries exceeded" in first[1]  # the whole error, once
    lines = outage.failed(mlflow_like_error(), 2, wall + 2, 102.0)
    (short,) = [text for level, text in lines if level == logging.WARNING]
    assert short == (
        "registry unreachable: ConnectionError (ConnectionRefusedError) to "
        "http://127.0.0.1:5000, 2 failed polls since 22:59:01Z"
    )
    assert len(short) < 150
    (full,) = [text for level, text in lines if level == logging.DEBUG]
    assert LONG_URL[:100] in full
    outage.failed(http_error(), 3, wall + 4, 104.0)
    assert outage.succeeded(3, 131.4) == [
        (logging.INFO, "registry reachable again after 31 s, 3 failed polls")
    ]
    assert outage.succeeded(0, 133.0) == []  # said once


def test_a_healthy_registry_logs_nothing_and_one_failure_is_one_poll() -> None:
    outage = OutageLog("sqlite:///mlflow.db")
    assert outage.succeeded(0, 1.0) == []
    outage.failed(RuntimeError("database is locked"), 1, 0.0, 1.0)
    assert outage.succeeded(1, 3.0) == [
        (logging.INFO, "registry reachable again after 2 s, 1 failed poll")
    ]
