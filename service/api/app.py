"""The HTTP surface: MLflow scoring protocol, health, and the read-only state view.

A small Starlette app mounted into the BentoML service. It reads the raw body and
headers itself (BentoML's typed APIs cannot speak MLflow's protocol byte for byte).
The CPU work (parse, predict, encode) runs in each model version's batcher thread
(service/inference/micro_batcher.py), so health checks and other requests are never stuck behind a
slow model, and concurrent requests share one predict call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.api import error_pages
from service.api.admin import admin_routes
from service.api.bodies import read_body
from service.api.webhooks import webhook_routes
from service.errors import ServingError, internal_error
from service.gateway import Gateway
from service.traffic.pinning import TARGET_HEADER

log = logging.getLogger("stageserve.http")

JSON = "application/json"


def error_response(error: ServingError) -> Response:
    return Response(error.body(), status_code=error.status, media_type=JSON)


def create_app(get_gateway: Callable[[], Gateway]) -> Starlette:
    async def invoke(request: Request, model: str | None) -> Response:
        """Every prediction request is counted once in stageserve_requests_total: by
        ``gateway.invoke`` once it has the body, by ``count_refused`` before."""
        gateway = get_gateway()
        name = model
        try:
            if name is None:
                name = gateway.model_for_default_route()
            body = await read_body(
                request, gateway.settings.max_body_bytes, setting="STAGESERVE_MAX_BODY_BYTES"
            )
        except ServingError as error:
            gateway.count_refused(name, error.outcome)
            return error_response(error)
        except asyncio.CancelledError:  # BentoML's request timeout, while reading the body
            gateway.count_refused(name, "timeout")
            raise
        except Exception:
            gateway.count_refused(name, "error")
            log.exception("unexpected error while reading a prediction request")
            return error_response(internal_error())
        asked = request.headers
        try:
            answer = await gateway.invoke(
                name,
                asked.get(TARGET_HEADER),
                body,
                asked.get("content-type"),
                asked.get(gateway.settings.routing_key_header),
            )
        except ServingError as error:
            return error_response(error)
        except Exception:
            log.exception("unexpected error while serving a prediction")
            return error_response(internal_error())
        headers = answer.headers()
        if gateway.connections.should_close(request.scope.get("client")):
            headers["Connection"] = "close"
        return Response(answer.body, media_type=JSON, headers=headers)

    async def invocations(request: Request) -> Response:
        return await invoke(request, None)

    async def model_invocations(request: Request) -> Response:
        return await invoke(request, request.path_params["name"])

    async def health(_: Request) -> Response:
        gateway = get_gateway()
        if gateway.is_ready():
            return JSONResponse({"status": "ready"})
        return JSONResponse(
            {"status": "not_ready", "reasons": gateway.unready_reasons()}, status_code=503
        )

    async def version(_: Request) -> Response:
        import mlflow

        return Response(mlflow.__version__, media_type="text/plain")

    return Starlette(
        exception_handlers=error_pages.handlers(),
        routes=[
            Route("/invocations", invocations, methods=["POST"]),
            Route("/models/{name:path}/invocations", model_invocations, methods=["POST"]),
            Route("/ping", health, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/version", version, methods=["GET"]),
            *admin_routes(get_gateway),
            *webhook_routes(get_gateway),
        ],
    )
