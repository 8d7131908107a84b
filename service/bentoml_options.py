"""The options stageserve gives ``@bentoml.service`` besides its request timeout: how
many workers, no access log, and which routes BentoML traces.

Why a module of its own, read from the environment: BentoML takes a service's options
when it imports the service module, in the supervisor, before any worker (and so any
``Settings``) exists. A bad value is refused there, with service/config.py's message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.config import trace_predictions, worker_count

# BentoML opens an OpenTelemetry span for every request: a third of a small model's
# request cost, for spans nobody exports unless tracing is configured. Prediction routes
# skip it unless STAGESERVE_TRACE_PREDICTIONS=true; every other route keeps it, and
# BentoML's bentoml_* request metrics still count every request.
# OpenTelemetry searches these regexes in scheme://host/path.
PREDICTION_URL_PATTERN = r"^[a-z]+://[^/]*/(models/.+/)?invocations$"


def service_options(env: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments for ``@bentoml.service``, from STAGESERVE_WORKERS and
    STAGESERVE_TRACE_PREDICTIONS (BentoML's access log stays off: stageserve's own,
    ``--access-log``, says which model, target and version answered)."""
    options: dict[str, Any] = {
        "workers": worker_count(env),
        "logging": {"access": {"enabled": False}},
    }
    if not trace_predictions(env):
        options["tracing"] = {"excluded_urls": [PREDICTION_URL_PATTERN]}
    return options
