"""Fallback load generator when wrk is unavailable: closed-loop HTTP/1.1 keep-alive
clients on raw asyncio streams (no HTTP library, so the generator stays cheap), with the
same summary fields as bench/report.lua.

Also runnable alone: ``python -m bench.loadgen URL BODY_FILE CONNECTIONS SECONDS``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from bench.stats import ERROR_KINDS, LoadResult, percentile

TIMEOUT_S = 10.0


class _Tally:
    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.errors = dict.fromkeys(ERROR_KINDS, 0)


def build_request(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one response (Content-Length or chunked body); returns its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def _connection(host: str, port: int, request: bytes, deadline: float, tally: _Tally) -> None:
    """One closed-loop client: send, wait for the answer, send again, until the deadline.
    A request still running at the deadline is not counted (as in wrk)."""
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while time.monotonic() < deadline:
        if writer is None:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), TIMEOUT_S
                )
            except (OSError, TimeoutError):
                tally.errors["connect"] += 1
                await asyncio.sleep(0.01)
                continue
        assert reader is not None and writer is not None
        started = time.monotonic()
        try:
            writer.write(request)
            await writer.drain()
        except OSError:
            tally.errors["write"] += 1
            writer = None
            continue
        try:
            status = await asyncio.wait_for(read_response(reader), TIMEOUT_S)
        except TimeoutError:
            tally.errors["timeout"] += 1
            writer.close()
            writer = None
            continue
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            tally.errors["read"] += 1
            writer.close()
            writer = None
            continue
        finished = time.monotonic()
        if finished > deadline:
            break
        tally.latencies_ms.append((finished - started) * 1000)
        if status > 399:  # what wrk counts as a status error
            tally.errors["status"] += 1
    if writer is not None:
        writer.close()


async def _run(url: str, body: bytes, connections: int, duration_s: float) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = build_request(host, port, parts.path or "/", body)
    tally = _Tally()
    started = time.monotonic()
    deadline = started + duration_s
    tasks = [
        asyncio.create_task(_connection(host, port, request, deadline, tally))
        for _ in range(connections)
    ]
    # Stop at the deadline like wrk: requests in flight then are dropped, not waited for.
    await asyncio.wait(tasks, timeout=duration_s)
    elapsed = time.monotonic() - started
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies = tally.latencies_ms
    return LoadResult(
        requests=len(latencies),
        duration_s=elapsed,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=max(latencies, default=float("nan")),
        errors=tally.errors,
    )


class PythonLoad:
    name = "python"
    version = f"bench/loadgen.py (asyncio, Python {sys.version.split()[0]})"

    def run(self, url: str, body_path: Path, connections: int, duration_s: float) -> LoadResult:
        return asyncio.run(_run(url, body_path.read_bytes(), connections, duration_s))


def main(argv: list[str]) -> int:
    url, body_file, connections, seconds = argv
    result = PythonLoad().run(url, Path(body_file), int(connections), float(seconds))
    print(json.dumps(result.as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
