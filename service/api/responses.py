"""The HTTP answers every endpoint builds: JSON data, and MLflow errors."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from service.errors import JSON, ServingError


def json_response(payload: Any, status: int = 200, indent: int | None = None) -> Response:
    return Response(json.dumps(payload, indent=indent), status_code=status, media_type=JSON)


def error_response(error: ServingError, headers: Mapping[str, str] | None = None) -> Response:
    """A ServingError as the client sees it: its status, MLflow's JSON error body."""
    return Response(error.body(), status_code=error.status, media_type=JSON, headers=headers)
