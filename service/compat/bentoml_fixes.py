"""Fixes for BentoML 1.4.39, installed at import of the service (in every worker).

1. **Timer leak.** BentoML wraps every request in ``TimeoutMiddleware``, which arms a
   timer with ``loop.call_later(timeout, ...)`` and never cancels it. Each request
   therefore leaves a timer, a future and a context alive for the whole timeout (60 s
   here): at 1,500 requests/s that is 90,000 live timers, a heap that grows by megabytes
   a minute and garbage-collector passes that grow with it, so throughput falls and p99
   climbs the longer the server runs. The replacement keeps the behaviour (a 504 when no
   response has started within the timeout; once it has, the request may take as long
   as it needs) with ``asyncio.timeout``, whose timer is cancelled when the request
   ends, and without the extra task per request. Its 504 is in MLflow's error format.
2. **Plain-text errors.** BentoML's outer app answers unknown paths, wrong methods, a
   not-ready ``/readyz`` and uncaught exceptions in plain text; it gets the same JSON
   exception handlers as ours (service/api/error_pages.py).
3. **Unbounded metric labels.** BentoML's ``bentoml_*`` request metrics use the raw
   path as their ``endpoint`` label; they get the route template instead
   (service/api/route_labels.py), so ``/metrics`` stays the same size whatever paths
   clients send.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from service.api import error_pages
from service.api.responses import error_response
from service.api.route_labels import RouteLabels
from service.errors import ServingError

log = logging.getLogger("stageserve.bentoml_fixes")

# Routes of BentoML's own app around ours (system routes, schema, index and its assets).
BENTOML_ROUTES = (
    "/livez",
    "/healthz",
    "/readyz",
    "/metrics",
    "/schema.json",
    "/docs.json",
    "/",
    "/static_content/{path:path}",
    "/assets/{path:path}",
)


async def _timeout_middleware_call(self: Any, scope: Any, receive: Any, send: Any) -> None:
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


class _EndpointByRoute:
    """A BentoML metric whose ``endpoint`` label is the route template, not the path."""

    __slots__ = ("_label", "_metric")

    def __init__(self, metric: Any, label: Callable[[str], str]) -> None:
        self._metric = metric
        self._label = label

    def labels(self, *args: Any, **kwargs: Any) -> Any:
        endpoint = kwargs.get("endpoint")
        if endpoint is not None:
            kwargs["endpoint"] = self._label(endpoint)
        return self._metric.labels(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._metric, name)


def label_endpoints_by_route(middleware: Any, label: Callable[[str], str]) -> None:
    """Wrap every metric of a set-up BentoML traffic middleware that has an ``endpoint``
    label (whatever its attribute is called)."""
    for name, value in list(vars(middleware).items()):
        if "endpoint" in getattr(value, "_labelnames", ()):
            setattr(middleware, name, _EndpointByRoute(value, label))


def _install_endpoint_labels(labels: RouteLabels) -> None:
    from bentoml._internal.server.http.instruments import (
        HTTPTrafficMetricsMiddleware,
        RunnerTrafficMetricsMiddleware,
    )

    for cls in (HTTPTrafficMetricsMiddleware, RunnerTrafficMetricsMiddleware):
        original = getattr(cls._setup, "__stageserve_original__", cls._setup)

        def _setup(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> None:
            _original(self, *args, **kwargs)
            label_endpoints_by_route(self, labels)

        _setup.__stageserve_original__ = original  # type: ignore[attr-defined]
        cls._setup = _setup  # type: ignore[method-assign]


def _install_error_pages() -> None:
    from bentoml._internal.server.base_app import BaseAppFactory

    original = getattr(BaseAppFactory.__call__, "__stageserve_original__", BaseAppFactory.__call__)

    def __call__(self: Any) -> Any:
        app = original(self)
        for key, handler in error_pages.handlers().items():
            app.add_exception_handler(key, handler)
        return app

    __call__.__stageserve_original__ = original  # type: ignore[attr-defined]
    BaseAppFactory.__call__ = __call__  # type: ignore[method-assign]


def install(route_templates: Iterable[str] = ()) -> bool:
    """Install the three fixes; ``route_templates`` are the mounted app's routes (BentoML's
    own are known here). Idempotent; returns whether BentoML was there to fix."""
    try:
        from bentoml._internal.server.http.traffic import TimeoutMiddleware
    except ImportError:  # a BentoML without it: nothing to fix
        return False
    if TimeoutMiddleware.__call__ is not _timeout_middleware_call:
        TimeoutMiddleware.__call__ = _timeout_middleware_call  # type: ignore[method-assign]
    _install_error_pages()
    _install_endpoint_labels(RouteLabels([*BENTOML_ROUTES, *route_templates]))
    log.debug("installed the BentoML fixes")
    return True
