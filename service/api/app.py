"""The HTTP surface: MLflow scoring protocol, feedback, health, the admin and webhook APIs, and
the description of them all (service/api/api_docs.py).

A small Starlette app mounted into the BentoML service. It reads the raw body and
headers itself (BentoML's typed APIs cannot speak MLflow's protocol byte for byte).
The CPU work (parse, predict, encode) runs in each model version's batcher thread
(service/inference/micro_batcher.py), so health checks and other requests are never
stuck behind a slow model, and concurrent requests share one predict call. Each
endpoint module gets only the part of the worker's gateway it needs.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.api import error_pages
from service.api.admin import admin_routes
from service.api.api_docs import api_docs_routes
from service.api.experiment_route import experiment_routes
from service.api.feedback import feedback_routes
from service.api.invocations import invocation_routes
from service.api.rollout_routes import rollout_routes
from service.api.webhooks import webhook_routes
from service.gateway import Gateway
from service.ops.state_view import Health, health_json


def health_routes(get_health: Callable[[], Health]) -> list[Route]:
    async def health(_: Request) -> Response:
        shown = get_health()
        return JSONResponse(health_json(shown), status_code=200 if shown.ready else 503)

    return [
        Route("/ping", health, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
    ]


async def version(_: Request) -> Response:
    import mlflow

    return Response(mlflow.__version__, media_type="text/plain")


def create_app(get_gateway: Callable[[], Gateway]) -> Starlette:
    return Starlette(
        exception_handlers=error_pages.handlers(),
        routes=[
            *invocation_routes(lambda: get_gateway().invocations),
            *feedback_routes(lambda: get_gateway().feedback),
            *health_routes(lambda: get_gateway().view.health()),
            Route("/version", version, methods=["GET"]),
            *admin_routes(lambda: get_gateway().admin),
            *experiment_routes(lambda: get_gateway().experiment_api),
            *rollout_routes(lambda: get_gateway().rollout_api),
            *webhook_routes(lambda: get_gateway().webhooks),
            *api_docs_routes(),  # /, /openapi.json, /docs.json (BentoML's: service/compat/)
        ],
    )
