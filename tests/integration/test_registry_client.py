"""The watcher's registry calls fail fast; artifact downloads keep MLflow's retries.

Against a real `mlflow server` (behind a proxy that fails chosen requests with 503) and
a black-holed registry (a socket that accepts and never answers). The process
environment is a user's: none of the MLFLOW_HTTP_REQUEST_* variables the test session
sets for itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from registry_watcher.reader import RegistryReader, poll_timeout_s
from registry_watcher.state import VersionRef
from service.inference.loaded_version import LoadedVersion
from service.lifecycle.loader import VersionLoader
from service.lifecycle.servable import LoadError
from tests.integration.faulty_servers import BlackHole, FlakyProxy, first_n
from tests.integration.harness import TEST_ONLY_ENV, MlflowServer, Registry

HTTP_ENV = (
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
)


@pytest.fixture
def user_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No MLFLOW_HTTP_REQUEST_* at all, and whatever the code under test sets is undone."""
    assert set(TEST_ONLY_ENV) <= set(HTTP_ENV)
    saved = {key: os.environ.get(key) for key in HTTP_ENV}
    for key in HTTP_ENV:
        os.environ.pop(key, None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def global_uris(mlflow_server: MlflowServer) -> Iterator[None]:
    """The loader uses MLflow's global URIs, as the gateway sets them; put them back."""
    try:
        yield
    finally:
        mlflow.set_tracking_uri(mlflow_server.uri)
        mlflow.set_registry_uri(mlflow_server.uri)


def is_artifact_file(method: str, path: str) -> bool:
    """A file download from the server's artifact proxy (not a directory listing)."""
    return method == "GET" and path.split("?")[0].startswith("/api/2.0/mlflow-artifacts/artifacts/")


def test_the_poll_timeout_is_two_intervals_within_bounds() -> None:
    assert poll_timeout_s(0.05) == 2.0
    assert poll_timeout_s(2.0) == 4.0
    assert poll_timeout_s(60.0) == 10.0


def test_a_black_holed_registry_fails_a_poll_in_one_bounded_attempt(user_env: None) -> None:
    timeout_s = poll_timeout_s(0.5)
    with BlackHole() as hole:
        reader = RegistryReader(hole.uri, timeout_s)
        assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ
        assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ
        started = time.monotonic()
        with pytest.raises(Exception, match=r"(?i)timed? ?out"):
            reader.search(["some-model"])
        elapsed = time.monotonic() - started
        assert hole.connections == 1, f"{hole.connections} attempts: the poll retried"
    print(f"\nblack-holed registry: poll failed after {elapsed:.2f}s, {hole.connections} attempt")
    assert timeout_s * 0.9 <= elapsed < timeout_s + 3.0, f"poll failed after {elapsed:.1f}s"


def test_a_registry_answering_503_fails_a_poll_at_once(
    user_env: None, mlflow_server: MlflowServer
) -> None:
    with FlakyProxy(mlflow_server.uri, lambda method, path: True) as proxy:
        reader = RegistryReader(proxy.uri, 10.0)
        started = time.monotonic()
        with pytest.raises(Exception, match="503"):
            reader.search(["some-model"])
        elapsed = time.monotonic() - started
    assert proxy.failed == 1  # one attempt, no retry
    assert elapsed < 2.0


def _load_through_a_flaky_proxy(
    server: MlflowServer, model: str, version: str, tmp_path: Path
) -> tuple[FlakyProxy, LoadedVersion | Exception]:
    """Load a version as the gateway does (the watcher's reader first, then MLflow's
    global URIs) through a proxy that answers the first artifact file GET with 503."""
    with FlakyProxy(server.uri, first_n(1, is_artifact_file)) as proxy:
        RegistryReader(proxy.uri, poll_timeout_s(0.5))
        mlflow.set_tracking_uri(proxy.uri)
        mlflow.set_registry_uri(proxy.uri)
        loader = VersionLoader(str(tmp_path / "models"))
        try:
            return proxy, loader(VersionRef(model, int(version)))
        except Exception as exc:
            return proxy, exc
        finally:
            loader.close()


def test_a_transient_503_during_a_download_is_retried(
    user_env: None,
    global_uris: None,
    registry: Registry,
    mlflow_server: MlflowServer,
    model_name: str,
    tmp_path: Path,
) -> None:
    version = registry.register_ridge(model_name, ["age", "bmi"], 1.0).version
    proxy, loaded = _load_through_a_flaky_proxy(mlflow_server, model_name, version, tmp_path)
    assert not isinstance(loaded, Exception), loaded
    assert loaded.smoke_tested
    assert proxy.failed == 1
    retried = [p for m, p, status in proxy.seen if is_artifact_file(m, p)]
    assert len(retried) > len(set(retried)), "the failed file was not fetched again"


def test_a_users_own_retry_setting_still_applies_to_downloads(
    user_env: None,
    global_uris: None,
    registry: Registry,
    mlflow_server: MlflowServer,
    model_name: str,
    tmp_path: Path,
) -> None:
    version = registry.register_ridge(model_name, ["age", "bmi"], 1.0).version
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"  # the user's choice
    proxy, loaded = _load_through_a_flaky_proxy(mlflow_server, model_name, version, tmp_path)
    assert isinstance(loaded, LoadError) and "503" in str(loaded), loaded
    assert proxy.failed == 1


def test_the_fast_client_reads_and_writes_what_the_watcher_needs(
    user_env: None, registry: Registry, mlflow_server: MlflowServer, model_name: str
) -> None:
    version = registry.register_ridge(model_name, ["age", "bmi"], 1.0).version
    reader = RegistryReader(mlflow_server.uri, poll_timeout_s(2.0))
    [found] = reader.search([model_name, "no-such-model"])
    assert found.name == model_name
    assert reader.get_version(model_name, int(version)).version == int(version)
    assert reader.get_version(model_name, 999) is None
    reader.set_model_tag(model_name, "stageserve.test", "1")
    assert reader.search([model_name])[0].tags["stageserve.test"] == "1"
    reader.delete_model_tag(model_name, "stageserve.test")
    reader.delete_model_tag(model_name, "stageserve.test")  # already gone: fine
    assert "stageserve.test" not in reader.search([model_name])[0].tags
