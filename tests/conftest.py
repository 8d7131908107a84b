"""Shared fixtures: a real `mlflow server` for the whole session, and a registry client."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import TEST_ONLY_ENV, MlflowServer, Registry

# MLflow's client retries 7 times with exponential backoff by default: a test talking
# to a stopped server would hang for minutes instead of failing.
for _key, _value in TEST_ONLY_ENV.items():
    os.environ.setdefault(_key, _value)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def registry(mlflow_server: MlflowServer) -> Registry:
    return Registry(mlflow_server.uri)


@pytest.fixture
def model_name() -> str:
    """A fresh registered-model name, so tests never see each other's versions."""
    return f"m-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
