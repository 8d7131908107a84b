"""Bounded request heads in both uvicorn protocols, driven with a fake transport."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from service.api import head_limits
from service.api.head_limits import HeadLimits, LimitedH11Protocol, LimitedHttpToolsProtocol

LIMITS = HeadLimits(max_bytes=1024, timeout_s=0.2)
PROTOCOLS = [LimitedHttpToolsProtocol, LimitedH11Protocol]


class FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False
        self.eof = False

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def status(self) -> int:
        return int(bytes(self.written).split(b" ", 2)[1])

    def error(self) -> dict[str, str]:
        return json.loads(bytes(self.written).partition(b"\r\n\r\n")[2])


async def app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(autouse=True)
def limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(head_limits._HeadGuard, "limits", LIMITS)
    monkeypatch.setattr(head_limits, "LINGER_S", 0.01)


def connect(cls: type) -> tuple[Any, FakeTransport]:
    config = Config(app=app, log_config=None, lifespan="off")
    protocol = cls(config=config, server_state=ServerState(), app_state={})
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport


def run(scenario: Any) -> Any:
    return asyncio.run(scenario())


@pytest.mark.parametrize("cls", PROTOCOLS)
def test_a_head_within_the_limit_is_served(cls: type) -> None:
    async def scenario() -> FakeTransport:
        protocol, transport = connect(cls)
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nX-Fill: " + b"a" * 900 + b"\r\n\r\n")
        await asyncio.sleep(LIMITS.timeout_s * 2)  # the head timer must not fire
        return transport

    transport = run(scenario)
    assert transport.status() == 200 and not transport.closed


@pytest.mark.parametrize("cls", PROTOCOLS)
def test_one_huge_header_gets_431(cls: type) -> None:
    async def scenario() -> FakeTransport:
        protocol, transport = connect(cls)
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
        await asyncio.sleep(0.05)
        return transport

    transport = run(scenario)
    assert transport.status() == 431 and transport.eof and transport.closed
    assert "STAGESERVE_MAX_HEADER_BYTES" in transport.error()["message"]


@pytest.mark.parametrize("cls", PROTOCOLS)
def test_an_endless_header_line_is_cut_once_past_the_limit(cls: type) -> None:
    async def scenario() -> tuple[FakeTransport, int]:
        protocol, transport = connect(cls)
        protocol.data_received(b"GET / HTTP/1.1\r\nX-Endless: ")
        fed = 0
        while not transport.written and fed < 100_000:
            protocol.data_received(b"a" * 100)
            fed += 100
        return transport, fed

    transport, fed = run(scenario)
    assert transport.status() == 431
    assert fed <= LIMITS.max_bytes + 100


@pytest.mark.parametrize("cls", PROTOCOLS)
def test_many_small_headers_get_431(cls: type) -> None:
    async def scenario() -> FakeTransport:
        protocol, transport = connect(cls)
        headers = b"".join(b"X-%d: v\r\n" % i for i in range(10_000))
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        return transport

    assert run(scenario).status() == 431


@pytest.mark.parametrize("cls", PROTOCOLS)
def test_a_head_not_finished_in_time_gets_408(cls: type) -> None:
    async def scenario() -> FakeTransport:
        protocol, transport = connect(cls)
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n")
        await asyncio.sleep(LIMITS.timeout_s + 0.1)
        return transport

    transport = run(scenario)
    assert transport.status() == 408 and transport.closed
    assert "STAGESERVE_HEADER_TIMEOUT" in transport.error()["message"]


@pytest.mark.parametrize("cls", PROTOCOLS)
def test_a_silent_connection_is_closed_without_an_answer(cls: type) -> None:
    async def scenario() -> FakeTransport:
        _, transport = connect(cls)
        await asyncio.sleep(LIMITS.timeout_s + 0.1)
        return transport

    transport = run(scenario)
    assert transport.closed and transport.written == b""


@pytest.mark.parametrize("cls", PROTOCOLS)
def test_garbage_gets_a_json_400(cls: type) -> None:
    async def scenario() -> FakeTransport:
        protocol, transport = connect(cls)
        protocol.data_received(b"\x00\x01 not http\r\n\r\n")
        return transport

    transport = run(scenario)
    assert transport.status() == 400 and transport.error()["error_code"] == "BAD_REQUEST"


def test_install_points_uvicorn_at_the_bounded_protocols(monkeypatch: pytest.MonkeyPatch) -> None:
    from uvicorn import config

    monkeypatch.setattr(config, "HTTP_PROTOCOLS", dict(config.HTTP_PROTOCOLS))
    head_limits.install(HeadLimits(2048, 3.0))
    loaded = Config(app=app, log_config=None)
    loaded.load()
    assert loaded.http_protocol_class is LimitedHttpToolsProtocol
    assert head_limits._HeadGuard.limits == HeadLimits(2048, 3.0)


def test_limits_come_from_the_environment() -> None:
    env = {"STAGESERVE_MAX_HEADER_BYTES": "4096", "STAGESERVE_HEADER_TIMEOUT": "2.5"}
    assert HeadLimits.from_env(env) == HeadLimits(4096, 2.5)
    assert HeadLimits.from_env({}) == HeadLimits(65536, 10.0)
