"""BentoML's ``TimeoutMiddleware`` without its timer leak.

What BentoML 1.4.39 does wrong: it wraps every request in ``TimeoutMiddleware``, which
arms a timer with ``loop.call_later(timeout, ...)`` and never cancels it. Each request
therefore leaves a timer, a future and a context alive for the whole timeout (60 s
here): at 1,500 requests/s that is 90,000 live timers, a heap that grows by megabytes a
minute and garbage-collector passes that grow with it, so throughput falls and p99
climbs the longer the server runs. It also answers its 504 as ``{"error": ...}``.

What the fix does: it replaces ``TimeoutMiddleware.__call__``, keeping the behaviour (a
504 when no response has started within the timeout; once it has, the request may take
as long as it needs) with ``asyncio.timeout``, whose timer is cancelled when the request
ends, and without BentoML's extra task per request. Its 504 is in MLflow's error format.

Targets BentoML 1.4.39 (TARGET_BENTOML; tests/unit/test_compat_pin.py fails when the pin
moves).
"""

from __future__ import annotations

import asyncio
from typing import Any

from service.api.responses import error_response
from service.errors import ServingError

TARGET_BENTOML = "1.4.39"


async def timeout_middleware_call(self: Any, scope: Any, receive: Any, send: Any) -> None:
    """``TimeoutMiddleware.__call__``; ``self.app`` and ``self.timeout`` are BentoML's."""
    if scope["type"] not in ("http", "websocket"):
        await self.app(scope, receive, send)
        return
    responded = False
    try:
        async with asyncio.timeout(self.timeout) as deadline:

            async def timed_send(message: Any) -> None:
                nonlocal responded
                if not responded:
                    responded = True
                    deadline.reschedule(None)  # the answer has started: no more limit
                await send(message)

            await self.app(scope, receive, timed_send)
    except TimeoutError:
        if responded:
            raise
        message = f"Not able to process the request in {self.timeout} seconds"
        answer = error_response(ServingError(504, "DEADLINE_EXCEEDED", message))
        await answer(scope, receive, send)


def install() -> bool:
    """Idempotent; returns whether BentoML had the middleware to fix."""
    try:
        from bentoml._internal.server.http.traffic import TimeoutMiddleware
    except ImportError:  # a BentoML without it: nothing to fix
        return False
    if TimeoutMiddleware.__call__ is not timeout_middleware_call:
        # mypy knows no attributes on functions: this one marks BentoML's original.
        original = TimeoutMiddleware.__call__
        timeout_middleware_call.__stageserve_original__ = original  # type: ignore[attr-defined]
        # mypy refuses assigning to a method: that assignment is the patch.
        TimeoutMiddleware.__call__ = timeout_middleware_call  # type: ignore[method-assign]
    return True
