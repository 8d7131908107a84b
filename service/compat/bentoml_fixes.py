"""Installs every fix of service/compat/ for the pinned BentoML, at import of the service
(in every worker): one call, so that no fix is forgotten.

Each fix is a module of its own that says what BentoML does wrong, what it changes and
the BentoML version it targets (``TARGET_BENTOML``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from service.compat import (
    app_error_handlers,
    docs_routes,
    metric_endpoint_labels,
    timeout_middleware,
)

log = logging.getLogger("stageserve.bentoml_fixes")


def install(route_templates: Iterable[str] = ()) -> bool:
    """Install every fix; ``route_templates`` are the mounted app's routes (for the metric
    labels). Idempotent; returns whether BentoML was there to fix."""
    if not timeout_middleware.install():
        return False
    app_error_handlers.install()
    metric_endpoint_labels.install(route_templates)
    docs_routes.install()
    log.debug("installed the BentoML fixes")
    return True
