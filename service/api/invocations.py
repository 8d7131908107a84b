"""The prediction endpoints: ``POST /invocations`` and ``POST /models/{name}/invocations``.

Reads the body (with a size limit) and the headers that steer the request, hands them
to the request path (service/request_path.py), and answers its result in MLflow's
scoring protocol. Every prediction request is counted once in
stageserve_requests_total: by the request path once it has the body, as a refusal
before that. With the access log on (service/logs/access_log.py) each one is logged
once too; with it off nothing of it is computed. With the inference log on
(service/inference_log/), a sampled answered prediction is handed to it, which never
blocks; with it off, or the request not sampled, that costs one check.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.api.bodies import read_body
from service.api.connections import ConnectionRecycler
from service.api.responses import error_response
from service.errors import JSON, ServingError, internal_error
from service.experiments.request_ids import fresh_request_id
from service.inference_log.recorder import InferenceLog
from service.inference_log.records import prediction_row
from service.logs.access_log import (
    MISSING,
    REQUEST_ID_HEADER,
    AccessLog,
    access_entry,
    request_id,
)
from service.request_path import REQUEST_ID, Answer, RequestPath
from service.traffic.pinning import TARGET_HEADER

log = logging.getLogger("stageserve.http")


@dataclass(frozen=True)
class Invocations:
    """What the prediction endpoints need."""

    requests: RequestPath
    connections: ConnectionRecycler  # spreads keep-alive connections over the workers
    max_body_bytes: int
    routing_key_header: str
    access_log: AccessLog | None = None  # None: off
    inference_log: InferenceLog | None = None  # None: off


# What one request came to: the response, the model it named, the answer if it got one.
Outcome = tuple[Response, str | None, Answer | None]


def invocation_routes(get: Callable[[], Invocations]) -> list[Route]:
    async def invoke(request: Request, model: str | None) -> Response:
        parts = get()
        if parts.access_log is None:
            return (await respond(parts, request, model))[0]
        return await respond_logged(parts.access_log, parts, request, model)

    async def respond_logged(
        access: AccessLog, parts: Invocations, request: Request, model: str | None
    ) -> Response:
        started = time.perf_counter()
        # Cancelled (BentoML's request timeout, which answers 504) unless it returns.
        status, name, answer = 504, model, None
        response: Response | None = None
        try:
            response, name, answer = await respond(parts, request, model)
            status = response.status_code
            return response
        finally:
            access.record(
                access_entry(
                    request.method,
                    request.scope.get("raw_path") or request.scope["path"],
                    status,
                    answer.model if answer is not None else name,
                    answer.target.text if answer is not None else None,
                    answer.version if answer is not None else None,
                    # The id the answer carries (before it: the client's, if any).
                    response.headers.get(REQUEST_ID_HEADER)
                    if response is not None
                    else request.headers.get(REQUEST_ID_HEADER),
                    time.perf_counter() - started,
                )
            )

    async def respond(parts: Invocations, request: Request, model: str | None) -> Outcome:
        requests = parts.requests
        name = model
        client_id = request_id(request.headers.get(REQUEST_ID_HEADER))
        known_id = None if client_id == MISSING else client_id

        def refused(error: ServingError) -> Response:
            # An error answer names no version: its id is the client's or a random one.
            id_header = {REQUEST_ID: known_id or fresh_request_id()}
            return error_response(error, id_header if requests.signs_ids else None)

        inference = parts.inference_log
        if inference is not None and not inference.sampled():
            inference = None  # this request is not logged
        arrived = (datetime.now(UTC), time.perf_counter()) if inference is not None else None
        try:
            if name is None:
                name = requests.model_for_default_route()
            body = await read_body(
                request, parts.max_body_bytes, setting="STAGESERVE_MAX_BODY_BYTES"
            )
        except ServingError as error:
            requests.count_refused(name, error.outcome)
            return refused(error), name, None
        except asyncio.CancelledError:  # BentoML's request timeout, while reading the body
            requests.count_refused(name, "timeout")
            raise
        except Exception:
            requests.count_refused(name, "error")
            log.exception("unexpected error while reading a prediction request")
            return refused(internal_error()), name, None
        asked = request.headers
        try:
            answer = await requests.invoke(
                name,
                asked.get(TARGET_HEADER),
                body,
                asked.get("content-type"),
                asked.get(parts.routing_key_header),
                known_id,
            )
        except ServingError as error:
            return refused(error), name, None
        except Exception:
            log.exception("unexpected error while serving a prediction")
            return refused(internal_error()), name, None
        headers = answer.headers()
        if parts.connections.should_close(request.scope.get("client")):
            headers["Connection"] = "close"
        response = Response(answer.body, media_type=JSON, headers=headers)
        if inference is not None and arrived is not None:
            inference.record(
                prediction_row(
                    # The signed id feedback names (X-Feedback-Id), so prediction and
                    # feedback rows join on it; else the client's well-formed id, if any.
                    request_id=answer.feedback_id or known_id,
                    at=arrived[0],
                    model=answer.model,
                    target=answer.target.text,
                    version=answer.version,
                    how=answer.how,
                    latency_s=time.perf_counter() - arrived[1],
                    status=response.status_code,
                    content_type=asked.get("content-type"),
                    body=body,
                    output=answer.body,
                    max_input_bytes=inference.max_input_bytes,
                )
            )
        return response, name, answer

    async def invocations(request: Request) -> Response:
        return await invoke(request, None)

    async def model_invocations(request: Request) -> Response:
        return await invoke(request, request.path_params["name"])

    return [
        Route("/invocations", invocations, methods=["POST"]),
        Route("/models/{name:path}/invocations", model_invocations, methods=["POST"]),
    ]
