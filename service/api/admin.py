"""The admin API: read what is served, and read or change a model's traffic policy.

Writes need ``Authorization: Bearer <STAGESERVE_ADMIN_TOKEN>``, compared in constant
time; with no token configured they are off (403, saying why). A write validates the
whole policy first, then writes the registry tag, then applies it on this worker at
once; other workers and replicas follow at their next poll. Nothing is applied if the
registry write fails, so replicas never disagree because of a half-done write.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from registry_watcher.traffic_policy import PolicyError, TrafficPolicy, policy_from_dict
from service.api.bodies import read_body
from service.api.responses import error_response, json_response
from service.errors import ServingError, bad_request, client_error, model_not_served
from service.ops.state_view import StateView, state_json, traffic_json
from service.traffic.control import PolicyWriteFailed, TrafficControl

log = logging.getLogger("stageserve.admin")

MAX_POLICY_BYTES = 64 * 1024
INDENT = 2  # admin answers are read by people


@dataclass(frozen=True)
class AdminApi:
    """What the admin endpoints need."""

    view: StateView
    traffic: TrafficControl
    token: str | None  # STAGESERVE_ADMIN_TOKEN; None: writes are off


def check_token(
    configured: str | None, authorization: str | None, what: str = "admin"
) -> ServingError | None:
    """None when the request may write; otherwise the error to answer. Never logs tokens.
    ``what`` names the token in the message (the feedback API checks its own with this)."""
    if not configured:
        return ServingError(
            403,
            "PERMISSION_DENIED",
            "Admin writes are disabled: start the gateway with STAGESERVE_ADMIN_TOKEN set.",
            outcome="forbidden",
        )
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not presented:
        return ServingError(
            401, "UNAUTHENTICATED", "Missing 'Authorization: Bearer <token>' header.", "forbidden"
        )
    if not hmac.compare_digest(presented.strip().encode(), configured.encode()):
        return ServingError(401, "UNAUTHENTICATED", f"Invalid {what} token.", "forbidden")
    return None


def admin_routes(get: Callable[[], AdminApi]) -> list[Route]:
    def model_of(request: Request, traffic: TrafficControl) -> str:
        name: str = request.path_params["name"]
        if not traffic.serves(name):
            raise model_not_served(name, traffic.models())
        return name

    def authorize(request: Request, api: AdminApi) -> None:
        error = check_token(api.token, request.headers.get("authorization"))
        if error is not None:
            raise error

    async def write(traffic: TrafficControl, name: str, policy: TrafficPolicy | None) -> None:
        try:
            await anyio.to_thread.run_sync(traffic.write, name, policy)
        except PolicyWriteFailed as exc:
            raise client_error(exc) from None

    async def models(_: Request) -> Response:
        return json_response(state_json(get().view.state()), indent=INDENT)

    async def get_traffic(request: Request) -> Response:
        traffic = get().traffic
        try:
            return json_response(
                traffic_json(traffic.view(model_of(request, traffic))), indent=INDENT
            )
        except ServingError as error:
            return error_response(error)

    def policy_write(
        change: Callable[[Request, TrafficControl, str], Awaitable[None]],
    ) -> Callable[[Request], Awaitable[Response]]:
        """An authorized write of a served model's policy, answered with the new view."""

        async def endpoint(request: Request) -> Response:
            api = get()
            traffic = api.traffic
            try:
                name = model_of(request, traffic)
                authorize(request, api)
                await change(request, traffic, name)
                return json_response(traffic_json(traffic.view(name)), indent=INDENT)
            except ServingError as error:
                return error_response(error, unauthorized_headers(error))

        return endpoint

    async def set_policy(request: Request, traffic: TrafficControl, name: str) -> None:
        body = await read_body(request, MAX_POLICY_BYTES, "A traffic policy")
        try:
            document = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise bad_request(f"The policy is not valid JSON: {exc}") from None
        except RecursionError:
            raise bad_request("The policy is nested too deeply to be a policy.") from None
        try:
            policy = policy_from_dict(document)
            traffic.check(name, policy)
        except PolicyError as exc:
            raise bad_request(f"Invalid traffic policy: {exc}", "INVALID_PARAMETER_VALUE") from None
        except RecursionError:
            raise bad_request("The policy is nested too deeply to be a policy.") from None
        await write(traffic, name, policy)
        log.info("traffic policy of %s set through the admin API: %s", name, policy.to_json())

    async def clear_policy(_: Request, traffic: TrafficControl, name: str) -> None:
        await write(traffic, name, None)
        log.info("traffic policy of %s cleared through the admin API", name)

    put_traffic = policy_write(set_policy)
    delete_traffic = policy_write(clear_policy)

    traffic_methods = {"GET": get_traffic, "PUT": put_traffic, "DELETE": delete_traffic}

    async def traffic(request: Request) -> Response:
        # One route for the three methods, so a 405 lists all of them in its Allow header
        # (Starlette adds HEAD, answered as GET).
        return await traffic_methods.get(request.method, get_traffic)(request)

    return [
        Route("/admin/models", models, methods=["GET"]),
        Route("/admin/models/{name:path}/traffic", traffic, methods=list(traffic_methods)),
    ]


def unauthorized_headers(error: ServingError) -> dict[str, str] | None:
    return {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
