"""Request bodies read with a size limit, so no client can make a worker buffer more.

A declared ``Content-Length`` over the limit is refused before a byte of the body is
read; a chunked body is refused as soon as what arrived passes the limit. uvicorn then
discards the rest of the upload as it comes in, without buffering it.
"""

from __future__ import annotations

from starlette.requests import Request

from service.errors import too_large


async def read_body(
    request: Request, limit: int, what: str = "Request body", setting: str | None = None
) -> bytes:
    """The whole body, or a 413 (naming ``what`` and ``setting``) raised before more than
    ``limit`` bytes are read."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(limit, what, setting)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit, what, setting)
        chunks.append(chunk)
    return b"".join(chunks)
