"""The BentoML service: one Gateway per worker, the HTTP app mounted at the root.

``bentoml serve service.bento_service:StageServe`` (or ``stageserve serve``) runs it.
Worker count and timeouts come from the environment (see service/config.py), since
BentoML reads them when it imports this module.
"""

from __future__ import annotations

import logging
import os

import bentoml

from service.api import head_limits
from service.api.app import create_app
from service.compat import bentoml_fixes
from service.config import Settings, trace_predictions
from service.gateway import Gateway
from service.lifecycle.warm_start import WarmStartPolicy, hold_until_warm
from service.ops import log_redaction
from service.ops.run_dirs import plain_serve_runtime_dir

log_redaction.protect(os.environ)  # before anything logs a registry URL

_gateway: Gateway | None = None


def current_gateway() -> Gateway:
    if _gateway is None:
        raise RuntimeError("the stageserve gateway is not started in this process")
    return _gateway


app = create_app(current_gateway)
bentoml_fixes.install(route.path for route in app.routes)
head_limits.install(head_limits.HeadLimits.from_env(os.environ))  # uvicorn's, in each worker


def _workers() -> int:
    try:
        return max(1, int(os.environ.get("STAGESERVE_WORKERS", "1")))
    except ValueError:
        return 1


# BentoML opens an OpenTelemetry span for every request: a third of a small model's
# request cost, for spans nobody exports unless tracing is configured. Prediction routes
# skip it unless STAGESERVE_TRACE_PREDICTIONS=true; every other route keeps it, and
# BentoML's bentoml_* request metrics still count every request.
PREDICTION_URL_PATTERN = r"^[a-z]+://[^/]*/(models/.+/)?invocations$"


def _framework_config() -> dict:
    config: dict = {"logging": {"access": {"enabled": False}}}
    if not trace_predictions(os.environ):
        # OpenTelemetry searches these regexes in scheme://host/path.
        config["tracing"] = {"excluded_urls": [PREDICTION_URL_PATTERN]}
    return config


@bentoml.service(
    name="stageserve",
    workers=_workers(),
    traffic={"timeout": 60},
    **_framework_config(),
)
@bentoml.asgi_app(app, path="/")
class StageServe:
    """Serves MLflow registry targets; ready when every required target is loaded."""

    def __init__(self) -> None:
        global _gateway
        # `stageserve serve` gives all workers one runtime folder. Under plain
        # `bentoml serve` (a Bento container) nothing does, and workers do not inherit
        # what the supervisor sets at import; but they share the supervisor as parent.
        if "STAGESERVE_RUNTIME_DIR" not in os.environ:  # named to be swept once unused
            os.environ["STAGESERVE_RUNTIME_DIR"] = plain_serve_runtime_dir(os.getppid())
        settings = Settings.from_env()
        logging.getLogger("stageserve").setLevel(settings.log_level)
        self.gateway = Gateway(settings)
        _gateway = self.gateway
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
