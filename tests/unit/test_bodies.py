"""Bounded bodies: a declared or streamed body over the limit is refused before it is
read whole."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request

from service.api.bodies import read_body
from service.errors import ServingError


def request(chunks: list[bytes], headers: dict[str, str] | None = None) -> tuple[Request, list]:
    """A request whose body arrives in ``chunks``; the list returned records what was read."""
    read: list[bytes] = []
    pending = list(chunks)

    async def receive() -> dict[str, Any]:
        chunk = pending.pop(0) if pending else b""
        read.append(chunk)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {"type": "http", "method": "POST", "path": "/", "headers": raw}
    return Request(scope, receive), read


def test_a_body_within_the_limit_is_read_whole() -> None:
    req, _ = request([b"ab", b"cd"])
    assert asyncio.run(read_body(req, 4)) == b"abcd"


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    req, read = request([b"x" * 10], {"Content-Length": "10"})
    with pytest.raises(ServingError) as refused:
        asyncio.run(read_body(req, 4, "A webhook delivery"))
    assert refused.value.status == 413
    assert refused.value.message.startswith("A webhook delivery is larger than the 4 bytes")
    assert read == []


def test_a_streamed_body_is_refused_as_soon_as_it_passes_the_limit() -> None:
    req, read = request([b"x" * 3] * 100)
    with pytest.raises(ServingError) as refused:
        asyncio.run(read_body(req, 7, setting="STAGESERVE_MAX_BODY_BYTES"))
    assert refused.value.status == 413 and "(STAGESERVE_MAX_BODY_BYTES)" in refused.value.message
    assert len(read) == 3  # 9 bytes read of 300
