"""A fix for BentoML 1.4.39's request-timeout middleware, installed at import.

BentoML wraps every request in ``TimeoutMiddleware``, which arms a timer with
``loop.call_later(timeout, ...)`` and never cancels it. Each request therefore leaves a
timer, a future and a context alive for the whole timeout (60 s here): at 1,500
requests/s that is 90,000 live timers, a heap that grows by megabytes a minute and
garbage-collector passes that grow with it, so throughput falls and p99 climbs the
longer the server runs. The replacement keeps the behaviour (a 504 JSON answer when no
response has started within the timeout; once it has, the request may take as long as
it needs) with ``asyncio.timeout``, whose timer is cancelled when the request ends, and
without the extra task per request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("stageserve.bentoml_fixes")


async def _timeout_middleware_call(self: Any, scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] not in ("http", "websocket"):
        await self.app(scope, receive, send)
        return
    from starlette.responses import JSONResponse

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
        answer = JSONResponse(
            {"error": f"Not able to process the request in {self.timeout} seconds"},
            status_code=504,
        )
        await answer(scope, receive, send)


def install() -> bool:
    """Replace the middleware's ``__call__``; returns whether it was installed."""
    try:
        from bentoml._internal.server.http.traffic import TimeoutMiddleware
    except ImportError:  # a BentoML without it: nothing to fix
        return False
    if TimeoutMiddleware.__call__ is not _timeout_middleware_call:
        TimeoutMiddleware.__call__ = _timeout_middleware_call  # type: ignore[method-assign]
        log.debug("installed the timer-cancelling TimeoutMiddleware")
    return True
