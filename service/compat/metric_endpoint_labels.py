"""Bounded ``endpoint`` labels on BentoML's request metrics.

What BentoML 1.4.39 does wrong: its ``bentoml_*`` request metrics (set up by
``HTTPTrafficMetricsMiddleware._setup`` and ``RunnerTrafficMetricsMiddleware._setup``)
use the raw request path as their ``endpoint`` label, so every path a client or a
scanner makes up adds series to ``/metrics`` for the life of the process.

What the fix does: it wraps both ``_setup`` methods so that every metric they create with
an ``endpoint`` label gets the route template instead (service/api/route_labels.py:
``/models/{name}/invocations``, or ``other`` for an unknown path); ``/metrics`` then
stays the same size whatever paths clients send.

Targets BentoML 1.4.39 (TARGET_BENTOML; tests/unit/test_compat_pin.py fails when the pin
moves).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from service.api.route_labels import RouteLabels

TARGET_BENTOML = "1.4.39"

# Routes of BentoML's own app around ours: its system routes (its index page, assets and
# descriptions are removed by service/compat/docs_routes.py).
BENTOML_ROUTES = ("/livez", "/healthz", "/readyz", "/metrics")


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


def install(route_templates: Iterable[str] = ()) -> None:
    """``route_templates`` are the mounted app's routes (BentoML's own are known here).
    Idempotent: a second install wraps BentoML's original again, not our wrapper."""
    from bentoml._internal.server.http.instruments import (
        HTTPTrafficMetricsMiddleware,
        RunnerTrafficMetricsMiddleware,
    )

    labels = RouteLabels([*BENTOML_ROUTES, *route_templates])
    for cls in (HTTPTrafficMetricsMiddleware, RunnerTrafficMetricsMiddleware):
        original = getattr(cls._setup, "__stageserve_original__", cls._setup)

        def _setup(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> None:
            _original(self, *args, **kwargs)
            label_endpoints_by_route(self, labels)

        # mypy knows no attributes on functions: this one marks BentoML's original.
        _setup.__stageserve_original__ = original  # type: ignore[attr-defined]
        # mypy refuses assigning to a method: that assignment is the patch.
        cls._setup = _setup  # type: ignore[method-assign]
