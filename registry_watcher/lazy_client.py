"""A registry client made at its first call, not when its owner is built: importing
MLflow takes seconds, and the writers that need one (validation tags, rollouts) are
built at every gateway's start, most of them never to write."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from registry_watcher.poll_client import PollingClient


class LazyClient:
    """Owns a ``PollingClient`` (each call one attempt with a bounded timeout) made on
    first use of ``client``."""

    def __init__(self, registry_uri: str | None, timeout_s: float) -> None:
        self._registry_uri = registry_uri
        self._timeout_s = timeout_s
        self._client: PollingClient | None = None

    @property
    def client(self) -> PollingClient:
        if self._client is None:
            from registry_watcher.poll_client import PollingClient

            self._client = PollingClient(self._registry_uri, self._timeout_s)
        return self._client
