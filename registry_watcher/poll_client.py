"""An MLflow client for the watcher alone: one quick attempt per call, a bounded timeout.

MLflow's HTTP client retries 7 times with exponential backoff and waits up to 120 s per
attempt by default, which would freeze a poll for minutes during an outage; the watcher
has its own retry (the next poll), so it wants one attempt that fails fast. Artifact
downloads want the opposite: a transient 5xx in the middle of a multi-GB download must
be retried, not restart the load from zero. Both go through ``http_request``, which
takes its defaults from ``MLFLOW_HTTP_REQUEST_*`` in the process environment, so that
environment is left alone (a user's own values keep applying to downloads) and the
watcher's client passes its own ``max_retries=0`` and timeout on each call instead.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any
from urllib.parse import urlparse

from mlflow import MlflowClient
from mlflow.store.model_registry.rest_store import RestStore
from mlflow.tracking._model_registry.client import ModelRegistryClient
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.proto_json_utils import parse_dict
from mlflow.utils.rest_utils import http_request, verify_rest_response


class FastFailRestStore(RestStore):
    """MLflow's registry REST store, with no retries and its own timeout per call."""

    def __init__(self, registry_uri: str, timeout_s: float) -> None:
        super().__init__(partial(get_default_host_creds, registry_uri))
        self.timeout_s = timeout_s

    def _call_endpoint(
        self,
        api: Any,
        json_body: Any,
        call_all_endpoints: bool = False,
        extra_headers: dict[str, str] | None = None,
    ) -> Any:
        if call_all_endpoints:  # legacy fallbacks over several endpoints: not used by the watcher
            return super()._call_endpoint(api, json_body, call_all_endpoints, extra_headers)
        self._validate_workspace_support_if_specified()
        endpoint, method = self._get_endpoint_from_method(api)
        response_proto = self._get_response_from_method(api)
        # What mlflow.utils.rest_utils.call_endpoint does, with max_retries and timeout.
        body = json.loads(json_body) if json_body is not None else None
        response = http_request(
            host_creds=self.get_host_creds(),
            endpoint=endpoint,
            method=method,
            max_retries=0,
            timeout=self.timeout_s,
            extra_headers=extra_headers,
            **({"params": body} if method == "GET" else {"json": body}),
        )
        response = verify_rest_response(response, endpoint)
        if response.status_code == 204:
            return response_proto
        parse_dict(js_dict=json.loads(response.text), message=response_proto)
        return response_proto


class _RegistryClient(ModelRegistryClient):
    def __init__(self, registry_uri: str, store: FastFailRestStore) -> None:
        self._fast_store = store
        super().__init__(registry_uri, registry_uri)

    @property
    def store(self) -> FastFailRestStore:
        return self._fast_store


class PollingClient(MlflowClient):
    """``MlflowClient`` whose registry calls fail fast (http(s) registries).

    Other registries (a database URI, Databricks) keep MLflow's own client, configured
    by ``MLFLOW_HTTP_REQUEST_*`` as usual; a database answers or fails without retries.
    """

    def __init__(self, registry_uri: str | None, timeout_s: float) -> None:
        super().__init__(tracking_uri=registry_uri, registry_uri=registry_uri)
        self._fast_registry: _RegistryClient | None = None
        uri = self._registry_uri  # MLflow resolved it: never None here, but typed so
        if uri is not None and urlparse(uri).scheme in ("http", "https"):
            self._fast_registry = _RegistryClient(uri, FastFailRestStore(uri, timeout_s))

    def _get_registry_client(self) -> ModelRegistryClient:
        if self._fast_registry is not None:
            return self._fast_registry
        return super()._get_registry_client()
