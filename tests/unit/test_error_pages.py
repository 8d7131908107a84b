"""Framework errors (unknown path, wrong method, uncaught exception) as MLflow JSON."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.api import error_pages


async def ok(_: Request) -> Response:
    return Response("ok")


async def boom(_: Request) -> Response:
    raise RecursionError("deep")


APP = Starlette(
    routes=[Route("/ok", ok, methods=["POST"]), Route("/boom", boom)],
    exception_handlers=error_pages.handlers(),
)


@dataclass
class Answer:
    status_code: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def call(method: str, path: str) -> Answer:
    """One request straight through the ASGI app (errors it re-raises are swallowed,
    as the server would log them after the answer)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [],
        "root_path": "",
        "scheme": "http",
        "server": ("test", 80),
    }
    with contextlib.suppress(Exception):
        asyncio.run(APP(scope, receive, send))
    headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return Answer(sent[0]["status"], headers, body.decode())


def test_unknown_path_is_a_json_404() -> None:
    answer = call("GET", "/nope")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    assert "GET /nope" in answer.json()["message"]
    assert "/openapi.json" in answer.json()["message"]  # where the routes are listed


def test_wrong_method_is_a_json_405_with_allow() -> None:
    answer = call("GET", "/ok")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    assert answer.json() == {
        "error_code": "BAD_REQUEST",
        "message": "Method not allowed: GET /ok. Allowed: POST.",
    }


def test_uncaught_exception_is_a_json_500_that_shows_nothing() -> None:
    answer = call("GET", "/boom")
    assert answer.status_code == 500
    assert answer.json()["error_code"] == "INTERNAL_ERROR"
    assert "deep" not in answer.text


def test_error_answers_never_carry_credentials() -> None:
    """A model's or MLflow's exception text quoted in an error answer loses its secrets."""
    from service.errors import ServingError, error_body

    text = "could not reach http://alice:S3cr3t-pw@registry:5000/api?token=T0k3n-xyz"
    for body in (ServingError(400, "BAD_REQUEST", text).body(), error_body("BAD_REQUEST", text)):
        assert b"S3cr3t-pw" not in body and b"T0k3n-xyz" not in body
        assert b"registry:5000" in body  # the rest of the message is kept
