"""``POST /webhooks/mlflow``: MLflow registry webhooks make changes take effect at once.

Polling stays the source of truth; a verified delivery only makes every worker read
the registry now (service/ops/refresh_relay.py). Without ``STAGESERVE_WEBHOOK_SECRET``
the endpoint is off (404 with the reason): an unsigned "look now" would let anyone make
the gateway hammer the registry. The verdict on a delivery is the domain's
(registry_watcher/deliveries.py); which HTTP status answers it is said here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from registry_watcher.deliveries import Outcome, ReplayStore, Verdict, verify
from service.api.bodies import read_body
from service.api.responses import error_response, json_response
from service.errors import ServingError
from service.ops.refresh_relay import RefreshRelay

# MLflow's deliveries are a few hundred bytes; anything near this is not one. Read with
# the limit, so an unauthenticated sender cannot make a worker buffer a huge body.
MAX_DELIVERY_BYTES = 1024 * 1024

# The status that answers each verdict on a delivery.
STATUS = {
    Outcome.ACCEPTED: 202,
    Outcome.BAD_SIGNATURE: 401,
    Outcome.MALFORMED: 400,
    Outcome.STALE: 400,
    Outcome.REPLAY: 409,
}


@dataclass(frozen=True)
class WebhookApi:
    """What the webhook endpoint needs."""

    relay: RefreshRelay
    secret: str | None  # STAGESERVE_WEBHOOK_SECRET; None: the endpoint is off
    tolerance_s: float
    seen: ReplayStore | None  # delivery ids already received (None when off)


def status_of(verdict: Verdict) -> int:
    return STATUS[verdict.outcome]


def answer(verdict: Verdict) -> Response:
    """The HTTP answer to a delivery the domain has judged."""
    status = status_of(verdict)
    if status >= 400:
        # 401 and 400 only: an MLflow error code, not the 409's RESOURCE_CONFLICT.
        code = "UNAUTHENTICATED" if status == 401 else "BAD_REQUEST"
        return error_response(ServingError(status, code, f"Webhook rejected: {verdict.message}."))
    payload = {"status": verdict.outcome.value, "message": verdict.message, "model": verdict.model}
    return json_response(payload, status)


def webhook_routes(get: Callable[[], WebhookApi]) -> list[Route]:
    async def mlflow_webhook(request: Request) -> Response:
        api = get()
        if not api.secret or api.seen is None:
            api.relay.count("disabled")
            return error_response(
                ServingError(
                    404,
                    "ENDPOINT_NOT_FOUND",
                    "Webhooks are off: start the gateway with STAGESERVE_WEBHOOK_SECRET set "
                    "to the secret of the MLflow webhook.",
                )
            )
        try:
            body = await read_body(request, MAX_DELIVERY_BYTES, "A webhook delivery")
        except ServingError as error:
            api.relay.count("malformed")
            return error_response(error)
        verdict = verify(request.headers, body, api.secret, time.time(), api.tolerance_s, api.seen)
        api.relay.received(verdict)
        return answer(verdict)

    return [Route("/webhooks/mlflow", mlflow_webhook, methods=["POST"])]
