"""Registry I/O: one search call per poll, plus details of versions seen for the first time.

Uses ``MlflowClient`` so that every tracking URI MLflow supports (an ``http(s)``
tracking server, a database URI, Databricks) and its credentials work unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from registry_watcher.snapshot import RegistryModel, RegistryVersion, name_filter

# MLflow's HTTP client retries 7 times with exponential backoff by default, which
# would freeze a poll for minutes during an outage. The watcher has its own backoff,
# so one quick attempt per poll is right. Users can still override these.
_CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


def apply_client_defaults() -> None:
    for key, value in _CLIENT_DEFAULTS.items():
        os.environ.setdefault(key, value)


class RegistryReader:
    """Reads what the watcher needs from an MLflow registry, and writes policy tags."""

    def __init__(self, registry_uri: str | None) -> None:
        apply_client_defaults()
        from mlflow import MlflowClient

        self.registry_uri = registry_uri
        self._client = MlflowClient(tracking_uri=registry_uri, registry_uri=registry_uri)

    def search(self, names: Iterable[str]) -> list[RegistryModel]:
        """All served models in one call (pages of 1,000 names; one page in practice)."""
        names = sorted(set(names))
        models: list[RegistryModel] = []
        for start in range(0, len(names), 1000):
            chunk = names[start : start + 1000]
            token = None
            while True:
                page = self._client.search_registered_models(
                    filter_string=name_filter(chunk), max_results=1000, page_token=token
                )
                models.extend(RegistryModel.from_entity(rm) for rm in page)
                token = page.token
                if not token:
                    break
        return models

    def get_version(self, model: str, version: int) -> RegistryVersion | None:
        """Details of one version; None when it does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            mv = self._client.get_model_version(model, str(version))
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise
        return RegistryVersion.from_entity(mv)

    def set_model_tag(self, model: str, key: str, value: str) -> None:
        """Write a registered-model tag (the traffic policy lives in one)."""
        self._client.set_registered_model_tag(model, key, value)

    def delete_model_tag(self, model: str, key: str) -> None:
        """Remove a registered-model tag; a tag that is already gone is fine."""
        from mlflow.exceptions import MlflowException

        try:
            self._client.delete_registered_model_tag(model, key)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise

    def model_names(self, limit: int = 1000) -> list[str]:
        """Registered model names (one page): for did-you-mean hints about a missing model."""
        return [rm.name for rm in self._client.search_registered_models(max_results=limit)]
