"""``POST /webhooks/mlflow``: MLflow registry webhooks make changes take effect at once.

Polling stays the source of truth; a verified delivery only makes every worker read
the registry now. Without ``STAGESERVE_WEBHOOK_SECRET`` the endpoint is off (404 with
the reason): an unsigned "look now" would let anyone make the gateway hammer the
registry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from registry_watcher.deliveries import ReplayCache, ReplayStore, verify
from service.api.bodies import read_body
from service.errors import ServingError
from service.gateway import Gateway

# MLflow's deliveries are a few hundred bytes; anything near this is not one. Read with
# the limit, so an unauthenticated sender cannot make a worker buffer a huge body.
MAX_DELIVERY_BYTES = 1024 * 1024
JSON = "application/json"


class DirectoryReplayCache:
    """Delivery ids seen by any worker of this gateway: one empty file per id, created
    with O_EXCL in the shared runtime folder, so a replay is refused whichever worker
    it reaches. Files older than twice the tolerance are pruned now and then."""

    PRUNE_EVERY = 64

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self._adds = 0

    def add(self, delivery_id: str, now: float, tolerance_s: float) -> bool:
        self._adds += 1
        if self._adds % self.PRUNE_EVERY == 0:
            self._prune(now - 2 * tolerance_s)
        name = hashlib.sha256(delivery_id.encode()).hexdigest()
        try:
            fd = os.open(os.path.join(self.directory, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        os.close(fd)
        return True

    def _prune(self, older_than: float) -> None:
        for entry in os.scandir(self.directory):
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < older_than:
                    os.unlink(entry.path)


def webhook_routes(get_gateway: Callable[[], Gateway]) -> list[Route]:
    caches: dict[str, ReplayStore] = {}

    def replay_cache(gateway: Gateway) -> ReplayStore:
        if "seen" not in caches:
            directory = gateway.settings.runtime_dir
            caches["seen"] = (
                DirectoryReplayCache(os.path.join(directory, "deliveries"))
                if directory
                else ReplayCache()
            )
        return caches["seen"]

    async def mlflow_webhook(request: Request) -> Response:
        gateway = get_gateway()
        secret = gateway.settings.webhook_secret
        if not secret:
            gateway.webhook_outcome("disabled")
            return _error(
                404,
                "ENDPOINT_NOT_FOUND",
                "Webhooks are off: start the gateway with STAGESERVE_WEBHOOK_SECRET set "
                "to the secret of the MLflow webhook.",
            )
        try:
            body = await read_body(request, MAX_DELIVERY_BYTES, "A webhook delivery")
        except ServingError as error:
            gateway.webhook_outcome("malformed")
            return _error(error.status, error.error_code, error.message)
        verdict = verify(
            request.headers,
            body,
            secret,
            time.time(),
            gateway.settings.webhook_tolerance_s,
            replay_cache(gateway),
        )
        gateway.webhook_received(verdict)
        if verdict.status >= 400:
            code = "UNAUTHENTICATED" if verdict.status == 401 else "BAD_REQUEST"
            return _error(verdict.status, code, f"Webhook rejected: {verdict.message}.")
        payload = {"status": verdict.outcome, "message": verdict.message, "model": verdict.model}
        return Response(json.dumps(payload), status_code=verdict.status, media_type=JSON)

    return [Route("/webhooks/mlflow", mlflow_webhook, methods=["POST"])]


def _error(status: int, code: str, message: str) -> Response:
    return Response(ServingError(status, code, message).body(), status_code=status, media_type=JSON)
