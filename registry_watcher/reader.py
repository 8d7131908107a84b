"""Registry I/O: one search call per poll, plus details of versions seen for the first time.

Uses ``MlflowClient`` so that every tracking URI MLflow supports (an ``http(s)``
tracking server, a database URI, Databricks) and its credentials work unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

from registry_watcher.snapshot import RegistryModel, RegistryVersion, name_filter

MIN_TIMEOUT_S = 2.0
MAX_TIMEOUT_S = 10.0


def poll_timeout_s(poll_interval_s: float) -> float:
    """Seconds one registry call of the watcher may take: two poll intervals, within
    2-10 s. Long enough for a slow but working registry to answer a search, short
    enough that a black-holed one (accepts, never answers) costs a poll or two, not a
    frozen watcher."""
    return min(MAX_TIMEOUT_S, max(MIN_TIMEOUT_S, 2.0 * poll_interval_s))


class RegistryReader:
    """Reads what the watcher needs from an MLflow registry, and writes policy tags.

    Every call is one attempt bounded by ``timeout_s`` (see registry_watcher/poll_client.py):
    the watcher retries at its next poll. Nothing here changes the process environment,
    so artifact downloads keep MLflow's retries.
    """

    def __init__(self, registry_uri: str | None, timeout_s: float = MAX_TIMEOUT_S) -> None:
        from registry_watcher.poll_client import PollingClient

        self.registry_uri = registry_uri
        self.timeout_s = timeout_s
        self._client = PollingClient(registry_uri, timeout_s)

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
