"""Shared fixtures: a real `mlflow server` for the whole session, and a registry client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import MlflowServer, Registry


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
