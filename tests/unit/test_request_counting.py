"""stageserve_requests_total counts every prediction request once, whatever ends it:
refused before routing (413, ambiguous route), a 500, a timeout (BentoML's 504 cancels
the request), a model name outside Latin-1."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from registry_watcher.targets import parse_target
from service.config import Settings
from service.gateway import Gateway
from service.ops.metrics import get_metrics
from service.request_path import Route

PRODUCTION = parse_target("Production")


def gateway(models: str = "m") -> Gateway:
    settings = Settings.from_env({"STAGESERVE_MODELS": models, "STAGESERVE_TARGETS": "Production"})
    return Gateway(settings, registry=SimpleNamespace(), loader=SimpleNamespace())


def counted(model: str, target: str, version: str, outcome: str) -> float:
    return get_metrics().requests.labels(model, target, version, outcome)._value.get()


@dataclass
class FakeVersion:
    """A loaded version whose predictions fail, hang or succeed."""

    behaviour: str
    ref: Any = field(default_factory=lambda: SimpleNamespace(version=3))

    async def submit(self, body: bytes, content_type: str | None) -> bytes:
        if self.behaviour == "raise":
            raise RuntimeError("a bug")
        if self.behaviour == "hang":
            await asyncio.sleep(60)
        return b'{"predictions": [1]}'


def routed(gw: Gateway, behaviour: str) -> Gateway:
    version = FakeVersion(behaviour)
    gw.requests.route = lambda *_: Route(PRODUCTION, version, "random")  # type: ignore[method-assign]
    return gw


def test_an_unexpected_error_is_counted() -> None:
    gw = routed(gateway("m-error"), "raise")
    with pytest.raises(RuntimeError):
        asyncio.run(gw.requests.invoke("m-error", None, b"{}", "application/json"))
    assert counted("m-error", "Production", "3", "error") == 1


def test_a_request_cancelled_by_the_timeout_is_counted() -> None:
    gw = routed(gateway("m-timeout"), "hang")

    async def with_deadline() -> None:
        async with asyncio.timeout(0.05):  # what BentoML's TimeoutMiddleware does
            await gw.requests.invoke("m-timeout", None, b"{}", "application/json")

    with pytest.raises(TimeoutError):
        asyncio.run(with_deadline())
    assert counted("m-timeout", "Production", "3", "timeout") == 1
    assert get_metrics().in_flight.labels("m-timeout")._value.get() == 0


def test_refusals_before_routing_count_only_served_model_names() -> None:
    gw = gateway("m-refused")
    gw.requests.count_refused("m-refused", "bad_request")
    gw.requests.count_refused("made-up-by-a-client", "not_found")
    gw.requests.count_refused(None, "bad_request")
    assert counted("m-refused", "", "", "bad_request") == 1
    assert counted("", "", "", "not_found") >= 1
    assert "made-up-by-a-client" not in str(get_metrics().requests.collect())


def test_a_success_answers_headers_any_name_can_travel_in() -> None:
    gw = routed(gateway("modèle-€"), "succeed")
    answer = asyncio.run(gw.requests.invoke("modèle-€", None, b"{}", "application/json"))
    assert answer.headers()["X-Model-Name"] == "mod%C3%A8le-%E2%82%AC"
    assert all(v.encode("latin-1") for v in answer.headers().values())
    assert counted("modèle-€", "Production", "3", "success") == 1
