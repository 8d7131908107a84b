"""service.compat's fixes: BentoML's TimeoutMiddleware answers 504 like before (in MLflow's
format), and leaves no timer behind once a request is done; BentoML's app answers errors
as JSON; its request metrics are labelled by route, not by raw path."""

from __future__ import annotations

import asyncio
import json
from functools import partial
from typing import Any

from bentoml._internal.server.http.traffic import TimeoutMiddleware
from prometheus_client import CollectorRegistry, Counter

from service.compat import bentoml_fixes
from service.compat.metric_endpoint_labels import label_endpoints_by_route
from service.compat.timeout_middleware import timeout_middleware_call

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
    assert json.loads(sent[1]["body"]) == {
        "error_code": "DEADLINE_EXCEEDED",
        "message": "Not able to process the request in 0.05 seconds",
    }


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
    assert TimeoutMiddleware.__call__ is timeout_middleware_call


def test_bentoml_metrics_are_labelled_by_route_not_by_path() -> None:
    registry = CollectorRegistry()
    middleware = type("Middleware", (), {})()
    middleware.total = Counter("t", "t", ["endpoint", "code"], registry=registry)
    middleware.other = Counter("o", "o", ["code"], registry=registry)
    label_endpoints_by_route(middleware, lambda path: "/models/{name}/invocations")
    for name in ("a", "b", "c"):
        middleware.total.labels(endpoint=f"/models/{name}/invocations", code="200").inc()
    middleware.other.labels(code="200").inc()  # metrics without an endpoint are left alone
    samples = [s for m in registry.collect() for s in m.samples if s.name == "t_total"]
    assert [(s.labels["endpoint"], s.value) for s in samples] == [("/models/{name}/invocations", 3)]


def test_bentoml_traffic_middleware_is_set_up_with_route_labels() -> None:
    import prometheus_client
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware

    registry = CollectorRegistry()
    client = type("Client", (), {})()
    for kind in ("Counter", "Gauge", "Histogram", "Summary"):
        setattr(client, kind, partial(getattr(prometheus_client, kind), registry=registry))
    bentoml_fixes.install(["/models/{name:path}/invocations"])
    middleware = RunnerTrafficMetricsMiddleware(ok_app)
    middleware._setup(metrics_client=client, duration_buckets=(0.1, 1.0))
    labelled = middleware.metrics_request_total.labels(
        endpoint="/models/whatever/invocations",
        service_name="s",
        service_version="v",
        http_response_code=200,
        runner_name="r",
    )
    assert labelled._labelvalues[0] == "/models/{name}/invocations"
    unknown = middleware.metrics_request_in_progress.labels(
        endpoint="/wp-login.php", service_name="s", service_version="v", runner_name="r"
    )
    assert unknown._labelvalues[0] == "other"


def test_bentoml_apps_get_the_json_error_handlers() -> None:
    from bentoml._internal.server.base_app import BaseAppFactory
    from starlette.exceptions import HTTPException

    from service.api import error_pages

    class Factory(BaseAppFactory):
        name = "test"

        @property
        def routes(self) -> list:
            return []

    app = Factory()()
    assert app.exception_handlers[HTTPException] is error_pages.http_error
    assert app.exception_handlers[Exception] is error_pages.internal_error
