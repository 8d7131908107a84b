"""The BentoML service: one Gateway per worker, the HTTP app mounted at the root.

``bentoml serve service.bento_service:StageServe`` (or ``stageserve serve``) runs it.
Worker count and timeouts come from the environment (see service/config.py), since
BentoML reads them when it imports this module.
"""

from __future__ import annotations

import logging
import os
import tempfile

import bentoml

from service import bentoml_fixes
from service.config import Settings
from service.http_app import create_app
from service.runtime import Gateway

bentoml_fixes.install()

_gateway: Gateway | None = None


def current_gateway() -> Gateway:
    if _gateway is None:
        raise RuntimeError("the stageserve gateway is not started in this process")
    return _gateway


app = create_app(current_gateway)


def _workers() -> int:
    try:
        return max(1, int(os.environ.get("STAGESERVE_WORKERS", "1")))
    except ValueError:
        return 1


# BentoML's request middlewares (a tracing span and bentoml_* metrics labelled by the raw
# path) cost a third of a small model's request; stageserve_* metrics already count every
# prediction with bounded labels. They stay on for every other route, and for predictions
# too with STAGESERVE_FRAMEWORK_INSTRUMENTATION=true.
PREDICTION_PATHS = ("/invocations", "/models/")
PREDICTION_URL_PATTERN = r"^[a-z]+://[^/]*/(models/.+/)?invocations$"
_BENTOML_SKIP_PATHS = ["/metrics", "/healthz", "/livez", "/readyz"]


def _instrument_predictions() -> bool:
    return os.environ.get("STAGESERVE_FRAMEWORK_INSTRUMENTATION", "").strip().lower() in (
        "1",
        "true",
        "yes",
        "on",
    )


def _framework_config() -> dict:
    if _instrument_predictions():
        return {"logging": {"access": {"enabled": False}}}
    return {
        "logging": {
            "access": {"enabled": False, "skip_paths": [*_BENTOML_SKIP_PATHS, *PREDICTION_PATHS]}
        },
        # OpenTelemetry searches this regex in scheme://host/path.
        "tracing": {"excluded_urls": [PREDICTION_URL_PATTERN]},
    }


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
        os.environ.setdefault(
            "STAGESERVE_RUNTIME_DIR",
            os.path.join(tempfile.gettempdir(), f"stageserve-run-{os.getppid()}"),
        )
        settings = Settings.from_env()
        logging.getLogger("stageserve").setLevel(settings.log_level)
        self.gateway = Gateway(settings)
        _gateway = self.gateway
        self.gateway.start()

    def __is_ready__(self) -> bool:
        return self.gateway.is_ready()

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        self.gateway.stop()
