"""Errors a client sees, in MLflow's format: ``{"error_code": ..., "message": ...}``."""

from __future__ import annotations

import json

MAX_MESSAGE_CHARS = 2000


class ServingError(Exception):
    """An error answered to the client with a 4xx or 503 status and an MLflow error body."""

    def __init__(self, status: int, error_code: str, message: str, outcome: str = "bad_request"):
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = truncate(message)
        # Metric label: why the request did not succeed (bounded set of values).
        self.outcome = outcome

    def body(self) -> bytes:
        return json.dumps({"error_code": self.error_code, "message": self.message}).encode()


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
