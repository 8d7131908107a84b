"""Starlette exception handlers that answer every framework error in MLflow's format.

Starlette (ours and BentoML's outer app) answers an unknown path, a wrong method or an
uncaught exception in plain text. Installed on both apps, these handlers answer the
same statuses as JSON ``{"error_code", "message"}``: 404 ``ENDPOINT_NOT_FOUND``, 405
with its ``Allow`` header, a 500 that points at the log. They run only on errors, so
the request path pays nothing for them.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from service.api.responses import error_response
from service.errors import internal_error as internal_error_answer
from service.errors import status_error


def _message(request: Request, exc: HTTPException) -> str:
    where = f"{request.method} {request.url.path}"
    if exc.status_code == 404:
        return f"No endpoint at {where}; the gateway's routes are listed at GET /openapi.json."
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return f"Method not allowed: {where}. Allowed: {allowed}."
    return f"{exc.detail} ({where})"


async def http_error(request: Request, exc: Exception) -> Response:
    """An ``HTTPException`` (unknown path, wrong method, BentoML's probes) as MLflow JSON."""
    assert isinstance(exc, HTTPException)
    return error_response(status_error(exc.status_code, _message(request, exc)), exc.headers)


async def internal_error(request: Request, exc: Exception) -> Response:
    """Anything uncaught: a JSON 500, never the exception. Starlette re-raises it after
    this answer, and uvicorn logs it with its traceback."""
    return error_response(internal_error_answer())


def handlers() -> dict[Any, Any]:
    """The ``exception_handlers`` of a Starlette app."""
    return {HTTPException: http_error, Exception: internal_error}
