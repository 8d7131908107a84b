"""``POST /models/{name}/feedback`` and ``POST /feedback`` (one model served): rewards and
truths for answered requests, named by the answer's ``X-Feedback-Id``.

Reads the body (the prediction body's size limit), checks the bearer token when one is
configured (STAGESERVE_FEEDBACK_TOKEN, the admin API's check), parses the JSON and hands
it to service/experiments/feedback_intake.py, both in a thread (a batch is large, the
store is SQLite). One item is answered 200 or an MLflow error; a list with counts and
the refused items' errors.

A duplicate is answered 200 with ``"duplicate": true``, not 409: feedback pipelines
deliver at least once and retry on timeouts, and a retry of an item already counted has
succeeded in what it asked (the item is counted, once); a 409 would make them report
or dead-letter a success.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.api.admin import check_token, unauthorized_headers
from service.api.bodies import read_body
from service.api.responses import error_response, json_response
from service.errors import ServingError, bad_request, model_not_served
from service.experiments.feedback_intake import FeedbackIntake, Receipt
from service.experiments.feedback_items import FeedbackItem, NotFeedback, Reason

MAX_ERRORS_SHOWN = 100  # of a batch's refused items, in its answer


@dataclass(frozen=True)
class FeedbackApi:
    """What the feedback endpoints need."""

    intake: FeedbackIntake
    models: Callable[[], Sequence[str]]  # the models served
    default_model: Callable[[], str]  # the model /feedback means, or a ServingError
    token: str | None  # STAGESERVE_FEEDBACK_TOKEN; None: feedback is open
    max_body_bytes: int


def item_json(item: FeedbackItem) -> dict[str, Any]:
    attribution = item.attribution
    return {
        "request_id": attribution.request_id,
        "model": attribution.model,
        "target": attribution.target,
        "version": attribution.version,
    }


def receipt_response(receipt: Receipt) -> Response:
    if receipt.batch:
        return json_response(
            {
                "accepted": len(receipt.accepted),
                "duplicates": len(receipt.duplicates),
                "refused": len(receipt.errors),
                "errors": [
                    {
                        "index": error.index,
                        "error_code": "INVALID_PARAMETER_VALUE",
                        "reason": error.reason.value,
                        "message": error.message,
                    }
                    for error in receipt.errors[:MAX_ERRORS_SHOWN]
                ],
            }
        )
    if receipt.errors:
        (error,) = receipt.errors
        return error_response(bad_request(error.message, "INVALID_PARAMETER_VALUE"))
    duplicate = not receipt.accepted
    (item,) = receipt.duplicates if duplicate else receipt.accepted
    return json_response({"accepted": not duplicate, "duplicate": duplicate, **item_json(item)})


def feedback_routes(get: Callable[[], FeedbackApi]) -> list[Route]:
    async def receive(request: Request, model: str | None) -> Response:
        api = get()
        try:
            if model is None:
                model = api.default_model()
            elif model not in api.models():
                raise model_not_served(model, api.models())
        except ServingError as error:
            return error_response(error)
        if api.token:
            refused = check_token(api.token, request.headers.get("authorization"), "feedback")
            if refused is not None:
                api.intake.refuse(model, Reason.UNAUTHORIZED)
                return error_response(refused, unauthorized_headers(refused))
        try:
            body = await read_body(request, api.max_body_bytes, setting="STAGESERVE_MAX_BODY_BYTES")
            # Parsing a large batch takes a while too: off the event loop, with the rest.
            receipt = await anyio.to_thread.run_sync(receive_body, api.intake, model, body)
        except ServingError as error:
            api.intake.refuse(model, Reason.INVALID)
            return error_response(error)
        except NotFeedback as exc:  # counted by the intake
            return error_response(bad_request(str(exc)))
        return receipt_response(receipt)

    async def default_feedback(request: Request) -> Response:
        return await receive(request, None)

    async def model_feedback(request: Request) -> Response:
        return await receive(request, request.path_params["name"])

    return [
        Route("/feedback", default_feedback, methods=["POST"]),
        Route("/models/{name:path}/feedback", model_feedback, methods=["POST"]),
    ]


def receive_body(intake: FeedbackIntake, model: str, body: bytes) -> Receipt:
    return intake.receive(model, parse(body))


def parse(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:  # not JSON, not UTF-8, an integer of too many digits
        raise bad_request(f"Feedback is not valid JSON: {exc}") from None
    except RecursionError:
        raise bad_request("Feedback is nested too deeply.") from None
