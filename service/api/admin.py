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
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from registry_watcher.traffic_policy import PolicyError, policy_from_dict
from service.api.bodies import read_body
from service.errors import ServingError, bad_request, not_found
from service.gateway import Gateway

log = logging.getLogger("stageserve.admin")

JSON = "application/json"
MAX_POLICY_BYTES = 64 * 1024


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload, indent=2), status_code=status, media_type=JSON)


def _error(error: ServingError, headers: dict[str, str] | None = None) -> Response:
    return Response(error.body(), status_code=error.status, media_type=JSON, headers=headers)


def check_token(configured: str | None, authorization: str | None) -> ServingError | None:
    """None when the request may write; otherwise the error to answer. Never logs tokens."""
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
        return ServingError(401, "UNAUTHENTICATED", "Invalid admin token.", "forbidden")
    return None


def admin_routes(get_gateway: Callable[[], Gateway]) -> list[Route]:
    def model_of(request: Request, gateway: Gateway) -> str:
        name = request.path_params["name"]
        if name not in gateway.pool.models():
            served = ", ".join(gateway.pool.models())
            raise not_found(f"Model {name!r} is not served here. Served models: {served}.")
        return name

    def authorize(request: Request, gateway: Gateway) -> None:
        error = check_token(gateway.settings.admin_token, request.headers.get("authorization"))
        if error is not None:
            raise error

    async def models(_: Request) -> Response:
        return _json(get_gateway().state())

    async def get_traffic(request: Request) -> Response:
        gateway = get_gateway()
        try:
            return _json(gateway.traffic_view(model_of(request, gateway)))
        except ServingError as error:
            return _error(error)

    async def put_traffic(request: Request) -> Response:
        gateway = get_gateway()
        try:
            name = model_of(request, gateway)
            authorize(request, gateway)
            body = await read_body(request, MAX_POLICY_BYTES, "A traffic policy")
            try:
                document = json.loads(body)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise bad_request(f"The policy is not valid JSON: {exc}") from None
            except RecursionError:
                raise bad_request("The policy is nested too deeply to be a policy.") from None
            try:
                policy = policy_from_dict(document)
                gateway.policies.validate(name, policy)
            except PolicyError as exc:
                raise bad_request(
                    f"Invalid traffic policy: {exc}", "INVALID_PARAMETER_VALUE"
                ) from None
            except RecursionError:
                raise bad_request("The policy is nested too deeply to be a policy.") from None
            await anyio.to_thread.run_sync(gateway.write_policy, name, policy)
            log.info("traffic policy of %s set through the admin API: %s", name, policy.to_json())
            return _json(gateway.traffic_view(name))
        except ServingError as error:
            return _error(error, _auth_headers(error))

    async def delete_traffic(request: Request) -> Response:
        gateway = get_gateway()
        try:
            name = model_of(request, gateway)
            authorize(request, gateway)
            await anyio.to_thread.run_sync(gateway.write_policy, name, None)
            log.info("traffic policy of %s cleared through the admin API", name)
            return _json(gateway.traffic_view(name))
        except ServingError as error:
            return _error(error, _auth_headers(error))

    traffic_methods = {"GET": get_traffic, "PUT": put_traffic, "DELETE": delete_traffic}

    async def traffic(request: Request) -> Response:
        # One route for the three methods, so a 405 lists all of them in its Allow header
        # (Starlette adds HEAD, answered as GET).
        return await traffic_methods.get(request.method, get_traffic)(request)

    return [
        Route("/admin/models", models, methods=["GET"]),
        Route("/admin/models/{name:path}/traffic", traffic, methods=list(traffic_methods)),
    ]


def _auth_headers(error: ServingError) -> dict[str, str] | None:
    return {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
