"""The prediction endpoints: ``POST /invocations`` and ``POST /models/{name}/invocations``.

Reads the body (with a size limit) and the headers that steer the request, hands them
to the request path (service/request_path.py), and answers its result in MLflow's
scoring protocol. Every prediction request is counted once in
stageserve_requests_total: by the request path once it has the body, as a refusal
before that.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.api.bodies import read_body
from service.api.connections import ConnectionRecycler
from service.api.responses import error_response
from service.errors import JSON, ServingError, internal_error
from service.request_path import RequestPath
from service.traffic.pinning import TARGET_HEADER

log = logging.getLogger("stageserve.http")


@dataclass(frozen=True)
class Invocations:
    """What the prediction endpoints need."""

    requests: RequestPath
    connections: ConnectionRecycler  # spreads keep-alive connections over the workers
    max_body_bytes: int
    routing_key_header: str


def invocation_routes(get: Callable[[], Invocations]) -> list[Route]:
    async def invoke(request: Request, model: str | None) -> Response:
        parts = get()
        requests = parts.requests
        name = model
        try:
            if name is None:
                name = requests.model_for_default_route()
            body = await read_body(
                request, parts.max_body_bytes, setting="STAGESERVE_MAX_BODY_BYTES"
            )
        except ServingError as error:
            requests.count_refused(name, error.outcome)
            return error_response(error)
        except asyncio.CancelledError:  # BentoML's request timeout, while reading the body
            requests.count_refused(name, "timeout")
            raise
        except Exception:
            requests.count_refused(name, "error")
            log.exception("unexpected error while reading a prediction request")
            return error_response(internal_error())
        asked = request.headers
        try:
            answer = await requests.invoke(
                name,
                asked.get(TARGET_HEADER),
                body,
                asked.get("content-type"),
                asked.get(parts.routing_key_header),
            )
        except ServingError as error:
            return error_response(error)
        except Exception:
            log.exception("unexpected error while serving a prediction")
            return error_response(internal_error())
        headers = answer.headers()
        if parts.connections.should_close(request.scope.get("client")):
            headers["Connection"] = "close"
        return Response(answer.body, media_type=JSON, headers=headers)

    async def invocations(request: Request) -> Response:
        return await invoke(request, None)

    async def model_invocations(request: Request) -> Response:
        return await invoke(request, request.path_params["name"])

    return [
        Route("/invocations", invocations, methods=["POST"]),
        Route("/models/{name:path}/invocations", model_invocations, methods=["POST"]),
    ]
