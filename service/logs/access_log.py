"""The access log (``--access-log``): one record per prediction request.

Predictions only: they are what a client is billed, paged or debugged for. Health
probes and admin reads (polled by monitors and ``stageserve status``) would drown them,
and BentoML's ``bentoml_*`` metrics count every route anyway. BentoML's own access log
stays off (service/bentoml_options.py).

A record says method, path (as sent, cut to ``MAX_PATH_CHARS``), status, model, target,
version, request id (the client's ``X-Request-Id`` when it is well-formed, else "-"),
and latency in ms: as fields of the JSON object, and as one ``key=value`` line of text,
whose values never hold a space or a control character (a path or a model name cannot
forge a second line). The record builder is pure; ``AccessLog`` only logs it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from service.logs.log_format import fields

LOGGER = "stageserve.access"
REQUEST_ID_HEADER = "x-request-id"
MAX_PATH_CHARS = 256
MISSING = "-"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_UNSAFE = re.compile(r"[^\x21-\x7e]")  # anything but printable ASCII, space included


def request_id(header: str | None) -> str:
    """The client's request id if it is 1-128 chars of [A-Za-z0-9._:-], else "-"."""
    if header is not None and _REQUEST_ID.fullmatch(header):
        return header
    return MISSING


def bounded_path(raw_path: bytes | str) -> str:
    """The path as the client sent it (percent-encoded), at most MAX_PATH_CHARS."""
    text = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else raw_path
    if len(text) > MAX_PATH_CHARS:
        return text[: MAX_PATH_CHARS - 3] + "..."
    return text


def text_value(value: object) -> str:
    """A value fit for a ``key=value`` line: non-printable or non-ASCII characters and
    spaces escaped as \\xNN / \\uNNNN."""
    return _UNSAFE.sub(_escape, str(value))


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return "\\x20" if char == " " else char.encode("unicode_escape").decode("ascii")


@dataclass(frozen=True)
class AccessEntry:
    """One prediction request as the access log tells it."""

    method: str
    path: str
    status: int
    model: str | None
    target: str | None
    version: int | None
    request_id: str
    latency_ms: float

    def message(self) -> str:
        parts = [
            f"{text_value(self.method)} {text_value(self.path)} {self.status}",
            f"model={text_value(self.model or MISSING)}",
            f"target={text_value(self.target or MISSING)}",
            f"version={self.version if self.version is not None else MISSING}",
            f"request_id={self.request_id}",
            f"latency_ms={self.latency_ms:.2f}",
        ]
        return " ".join(parts)

    def fields(self) -> dict[str, dict[str, str | int | float | None]]:
        return fields(
            method=self.method,
            path=self.path,
            status=self.status,
            model=self.model,
            target=self.target,
            version=self.version,
            request_id=self.request_id,
            latency_ms=round(self.latency_ms, 3),
        )


def access_entry(
    method: str,
    raw_path: bytes | str,
    status: int,
    model: str | None,
    target: str | None,
    version: int | None,
    request_id_header: str | None,
    latency_s: float,
) -> AccessEntry:
    """The entry of one request, from what the endpoint has at hand."""
    return AccessEntry(
        method=method,
        path=bounded_path(raw_path),
        status=status,
        model=model,
        target=target,
        version=version,
        request_id=request_id(request_id_header),
        latency_ms=latency_s * 1000.0,
    )


class AccessLog:
    """Logs entries on ``stageserve.access`` at INFO."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger(LOGGER)

    def record(self, entry: AccessEntry) -> None:
        self._log.info("%s", entry.message(), extra=entry.fields())
