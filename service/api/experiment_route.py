"""``GET /admin/models/{name}/experiment``: a model's A/B results on this gateway, read
from every worker's counters (service/experiments/gateway_experiments.py).

Read-only and without a token, like the other admin reads. One gateway keeps no
history, so its window always starts at the policy's last change (or the gateway's
start): a ``since`` is refused, pointing at Prometheus, which has the history.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.api.responses import error_response, json_response
from service.errors import ServingError, bad_request, model_not_served
from service.experiments.gateway_experiments import GatewayExperiments

INDENT = 2  # read by people
NO_SINCE = (
    "A gateway keeps no history: its window starts when the traffic policy last changed. "
    "For another start, ask Prometheus: stageserve experiment show NAME --prometheus URL "
    "--since TIME."
)


@dataclass(frozen=True)
class ExperimentApi:
    experiments: GatewayExperiments
    models: Callable[[], Collection[str]]


def experiment_routes(get: Callable[[], ExperimentApi]) -> list[Route]:
    async def experiment(request: Request) -> Response:
        api = get()
        name: str = request.path_params["name"]
        try:
            if name not in api.models():
                raise model_not_served(name, api.models())
            if "since" in request.query_params:
                raise bad_request(NO_SINCE)
        except ServingError as error:
            return error_response(error)
        answer = await anyio.to_thread.run_sync(api.experiments.result, name)
        return json_response(answer, indent=INDENT)

    return [Route("/admin/models/{name:path}/experiment", experiment, methods=["GET"])]
