"""Errors a client sees, in MLflow's format: ``{"error_code": ..., "message": ...}``."""

from __future__ import annotations

import json

from registry_watcher.redact import redact

MAX_MESSAGE_CHARS = 2000

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


class ServingError(Exception):
    """An error answered to the client with a 4xx/5xx status and an MLflow error body."""

    def __init__(self, status: int, error_code: str, message: str, outcome: str = "bad_request"):
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        # A model's or MLflow's exception text can quote a URL with credentials.
        self.message = truncate(redact(message))
        # Metric label: why the request did not succeed (bounded set of values).
        self.outcome = outcome

    def body(self) -> bytes:
        return json.dumps({"error_code": self.error_code, "message": self.message}).encode()


def error_body(error_code: str, message: str) -> bytes:
    return json.dumps({"error_code": error_code, "message": truncate(redact(message))}).encode()


def code_for_status(status: int) -> str:
    """The MLflow error code that says what an HTTP error status says."""
    if status in _CODE_FOR_STATUS:
        return _CODE_FOR_STATUS[status]
    return "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST"


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


def internal_error() -> ServingError:
    return ServingError(500, "INTERNAL_ERROR", "Internal error; see the gateway log.", "error")
