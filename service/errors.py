"""Errors a client sees, in MLflow's format: ``{"error_code": ..., "message": ...}``.

The one place that turns an error into what a client reads: ``error_body`` builds every
MLflow error body (our endpoints, the framework's error pages, refused request heads,
BentoML's 504), and ``client_error`` maps the domain errors of routing and traffic
control (which know nothing of HTTP) to the status, code and metric outcome answered.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from registry_watcher.redact import redact
from service.traffic.control import PolicyWriteFailed
from service.traffic.pinning import NothingLoaded, UnknownOverride
from service.traffic.router import NoTargetAvailable

MAX_MESSAGE_CHARS = 2000
JSON = "application/json"  # the media type of every answer but /version's

# MLflow's error code for a status, when nothing more precise is known (MLflow's own
# ERROR_CODE_TO_HTTP_STATUS, read the other way).
_CODE_FOR_STATUS = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "ENDPOINT_NOT_FOUND",
    409: "RESOURCE_CONFLICT",
    429: "REQUEST_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    501: "NOT_IMPLEMENTED",
    503: "TEMPORARILY_UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def clean(message: str) -> str:
    """A message fit to answer: no credentials, not huge."""
    # A model's or MLflow's exception text can quote a URL with credentials.
    return truncate(redact(message))


def _encode(error_code: str, cleaned: str) -> bytes:
    return json.dumps({"error_code": error_code, "message": cleaned}).encode()


def error_body(error_code: str, message: str) -> bytes:
    """The MLflow error body for a code and a message (cleaned here)."""
    return _encode(error_code, clean(message))


class ServingError(Exception):
    """An error answered to the client with a 4xx/5xx status and an MLflow error body."""

    def __init__(self, status: int, error_code: str, message: str, outcome: str = "bad_request"):
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = clean(message)
        # Metric label: why the request did not succeed (bounded set of values).
        self.outcome = outcome

    def body(self) -> bytes:
        return _encode(self.error_code, self.message)


def code_for_status(status: int) -> str:
    """The MLflow error code that says what an HTTP error status says."""
    if status in _CODE_FOR_STATUS:
        return _CODE_FOR_STATUS[status]
    return "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST"


def status_error(status: int, message: str) -> ServingError:
    """An error named only by its status (framework pages, refused heads)."""
    return ServingError(status, code_for_status(status), message)


def truncate(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Error messages can quote the input; a huge body must not come back whole."""
    if len(message) <= limit:
        return message
    return message[:limit] + f"... [{len(message) - limit} more characters]"


def bad_request(message: str, error_code: str = "BAD_REQUEST") -> ServingError:
    return ServingError(400, error_code, message)


def not_found(message: str) -> ServingError:
    return ServingError(404, "RESOURCE_DOES_NOT_EXIST", message, outcome="not_found")


def unavailable(message: str) -> ServingError:
    return ServingError(503, "TEMPORARILY_UNAVAILABLE", message, outcome="unavailable")


def too_large(limit: int, what: str, setting: str | None = None) -> ServingError:
    """413 for a body over ``limit`` bytes, naming the setting that raises it, if any."""
    where = f" ({setting})" if setting else ""
    return ServingError(
        413, "BAD_REQUEST", f"{what} is larger than the {limit} bytes this gateway accepts{where}."
    )


def model_not_served(model: str, served: Iterable[str]) -> ServingError:
    return not_found(f"Model {model!r} is not served here. Served models: {', '.join(served)}.")


def internal_error() -> ServingError:
    return ServingError(500, "INTERNAL_ERROR", "Internal error; see the gateway log.", "error")


def client_error(exc: Exception) -> ServingError:
    """What the client is answered for a domain error of routing or traffic control.

    A ServingError is answered as it is; anything unknown is an internal error."""
    if isinstance(exc, ServingError):
        return exc
    if isinstance(exc, UnknownOverride):
        return bad_request(str(exc), "INVALID_PARAMETER_VALUE")
    if isinstance(exc, (NothingLoaded, NoTargetAvailable, PolicyWriteFailed)):
        return unavailable(str(exc))
    return internal_error()
