"""service.bentoml_fixes: BentoML's TimeoutMiddleware answers 504 like before, and leaves
no timer behind once a request is done."""

from __future__ import annotations

import asyncio
from typing import Any

from bentoml._internal.server.http.traffic import TimeoutMiddleware

from service import bentoml_fixes

bentoml_fixes.install()


async def _call(app: Any, timeout: float) -> tuple[list[dict[str, Any]], int]:
    middleware = TimeoutMiddleware(app, timeout=timeout)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    await middleware(scope, receive, send)
    loop = asyncio.get_running_loop()
    live_timers = sum(1 for h in loop._scheduled if not h.cancelled())  # type: ignore[attr-defined]
    return sent, live_timers


async def ok_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_a_quick_request_passes_and_leaves_no_timer() -> None:
    sent, live_timers = asyncio.run(_call(ok_app, timeout=60))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 200
    assert live_timers == 0  # BentoML's own version leaves one per request for 60 s


def test_no_response_within_the_timeout_is_a_504() -> None:
    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(5)

    sent, _ = asyncio.run(_call(slow_app, timeout=0.05))
    assert sent[0]["status"] == 504
    assert b"0.05 seconds" in sent[1]["body"]


def test_a_started_response_may_take_longer_than_the_timeout() -> None:
    async def streaming_app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(0.1)
        await send({"type": "http.response.body", "body": b"late"})

    sent, _ = asyncio.run(_call(streaming_app, timeout=0.05))
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"late"


def test_other_scopes_pass_straight_through() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    middleware = TimeoutMiddleware(app, timeout=1)
    asyncio.run(middleware({"type": "lifespan"}, None, None))
    assert seen == ["lifespan"]


def test_install_is_idempotent() -> None:
    assert bentoml_fixes.install() and bentoml_fixes.install()
    assert TimeoutMiddleware.__call__ is bentoml_fixes._timeout_middleware_call
