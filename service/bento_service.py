"""The BentoML service: one Gateway per worker, the HTTP app mounted at the root.

``bentoml serve service.bento_service:StageServe`` (or ``stageserve serve``) runs it.
Its options come from the environment (service/bentoml_options.py) and what the process
sets up around it from service/process_setup.py, since BentoML reads both when it
imports this module.
"""

from __future__ import annotations

import os

import bentoml
from starlette.routing import Route

from service.api.app import create_app
from service.bentoml_options import service_options
from service.gateway import Gateway
from service.gateway_slot import GatewaySlot
from service.lifecycle.warm_start import WarmStartPolicy, hold_until_warm
from service.process_setup import prepare_process, prepare_worker

gateway_slot = GatewaySlot()
app = create_app(gateway_slot)
prepare_process(route.path for route in app.routes if isinstance(route, Route))


@bentoml.service(
    name="stageserve",
    traffic={"timeout": 60},  # deploy/kubernetes/deployment.yaml's grace period counts on it
    **service_options(os.environ),
)
@bentoml.asgi_app(app, path="/")
class StageServe:
    """Serves MLflow registry targets; ready when every required target is loaded."""

    def __init__(self) -> None:
        self.gateway = Gateway(prepare_worker())
        gateway_slot.fill(self.gateway)
        self.gateway.start()

    def __is_ready__(self) -> bool:
        return self.gateway.is_ready()

    @bentoml.on_startup
    async def warm_start(self) -> None:
        """Keep off the shared socket while another worker serves and this one is still
        loading (uvicorn listens only once startup hooks are done): a worker respawned
        after a crash never answers 503 for want of a model. See service/lifecycle/warm_start.py."""
        policy = WarmStartPolicy(self.gateway.settings.worker_ready_timeout_s)
        await hold_until_warm(self.gateway.readiness, policy)

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        self.gateway.stop()
