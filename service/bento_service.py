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

from service.config import Settings
from service.http_app import create_app
from service.runtime import Gateway

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


@bentoml.service(
    name="stageserve",
    workers=_workers(),
    traffic={"timeout": 60},
    logging={"access": {"enabled": False}},
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
