"""Bounds on a request's head (request line and headers): its size and the time to send it.

uvicorn parses heads below ASGI and bounds neither with httptools: 64 MB of headers
were accepted (+106 MB RSS), 10,000 headers too, and a client sending one header byte
a second held its connection forever (slowloris). These subclasses of uvicorn's
protocols answer a head over ``STAGESERVE_MAX_HEADER_BYTES`` with 431 and one not
complete within ``STAGESERVE_HEADER_TIMEOUT`` seconds with 408 (or close a connection
that sent nothing), both as MLflow JSON, then close the connection. ``install`` makes
uvicorn pick them (its ``http`` setting names a class by string), in each worker.

Costs on the request path: a clock read and a few attribute updates per request; at
most one timer per connection and timeout period.
"""

from __future__ import annotations

import asyncio
import http
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
import httptools
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.config import head_limits
from service.errors import JSON, code_for_status, error_body

log = logging.getLogger("stageserve.http")

# After a refusal, what the client still sends is read and dropped this long before the
# socket closes: closing with unread data makes the kernel send a reset, which can
# destroy the answer before the client reads it.
LINGER_S = 1.0


@dataclass(frozen=True)
class HeadLimits:
    max_bytes: int = 65536
    timeout_s: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> HeadLimits:
        max_bytes, timeout_s = head_limits(env)
        return cls(max_bytes, timeout_s)


class HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head over the limit."""


def refusal(status: int, message: str) -> bytes:
    """A complete HTTP/1.1 answer that closes the connection, with an MLflow JSON body."""
    body = error_body(code_for_status(status), message)
    phrase = http.HTTPStatus(status).phrase
    head = (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: {JSON}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def too_large_message(limits: HeadLimits) -> str:
    return (
        f"Request head (request line and headers) larger than the {limits.max_bytes} bytes "
        "this gateway accepts (STAGESERVE_MAX_HEADER_BYTES)."
    )


def timeout_message(limits: HeadLimits) -> str:
    return (
        f"Request head not received within {limits.timeout_s:g} seconds "
        "(STAGESERVE_HEADER_TIMEOUT)."
    )


class _HeadGuard:
    """What both protocols share: the head deadline, and answering then closing.

    One timer per connection at most, armed lazily: a head's start only records the
    time; when the timer fires, it refuses a head that is still incomplete past its
    deadline, re-arms for one that started later, and lapses otherwise (the next head
    arms it again). So a request costs a clock read, not a timer."""

    limits: ClassVar[HeadLimits] = HeadLimits()
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    _head_timer: asyncio.TimerHandle | None = None
    _head_began = 0.0  # loop time the current (or last) head began
    _refused = False
    _in_head = True  # a head has begun (or the connection is new) and is not complete

    # As wide as asyncio's BaseProtocol says; uvicorn's protocols narrow it (and say so).
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._begin_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)  # type: ignore[misc]

    def _begin_head(self) -> None:
        self._head_began = self.loop.time()
        if self._head_timer is None:
            self._head_timer = self.loop.call_at(
                self._head_began + self.limits.timeout_s, self._head_deadline
            )

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_pending(self) -> bool:
        return self._in_head

    def _head_bytes_received(self) -> bool:
        raise NotImplementedError

    def _head_deadline(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._head_pending():
            return
        deadline = self._head_began + self.limits.timeout_s
        if self.loop.time() < deadline:  # this head began after the timer was armed
            self._head_timer = self.loop.call_at(deadline, self._head_deadline)
        elif self._head_bytes_received():
            self._refuse(408, timeout_message(self.limits))
        else:  # connected and sent nothing: nobody to answer
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        """Answer, stop parsing, drop what else arrives, close soon."""
        self._refused = True
        self._disarm_head_timer()
        if self.transport.is_closing():
            return
        self.transport.write(refusal(status, message))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)


class LimitedHttpToolsProtocol(_HeadGuard, HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded head.

    Size: the raw bytes of a head still incomplete after a read are counted (an
    unfinished header line sits in httptools' buffer, unseen by callbacks); a head that
    completes within a read is measured exactly, but only when that read was big enough
    for it to be over the limit, so an ordinary request pays nothing for it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # a new connection owes a head
        self._started = False  # bytes of the current head have arrived
        self._head_seen = 0  # raw bytes of the current head in earlier reads
        self._chunk = 0  # size of the read being parsed

    def _head_bytes_received(self) -> bool:
        return self._started

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._unset_keepalive_if_required()
        self._chunk = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, HeadTooLarge):
                self._refuse(431, too_large_message(self.limits))
            else:
                self._refuse(400, "Invalid HTTP request received.")
            return
        except httptools.HttpParserError:
            self._refuse(400, "Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_head and self._started:
            self._head_seen += len(data)
            if self._head_seen > self.limits.max_bytes:
                self._refuse(431, too_large_message(self.limits))

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._started = True
        self._head_seen = 0
        self._begin_head()

    def on_headers_complete(self) -> None:
        if self._head_seen + self._chunk > self.limits.max_bytes:  # could be over: measure
            size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if size > self.limits.max_bytes:
                raise HeadTooLarge
        self._in_head = False
        self._started = False
        super().on_headers_complete()


class _LimitedConnection(h11.Connection):
    """h11 bounds only an incomplete head (``max_incomplete_event_size``); this bounds a
    complete one too, and remembers the status h11 suggests for the error that ended
    the connection."""

    refusal_status = 400

    def next_event(self) -> Any:
        try:
            event = super().next_event()
            if isinstance(event, h11.Request):
                size = len(event.target) + sum(len(n) + len(v) + 4 for n, v in event.headers)
                if size > self._max_incomplete_event_size:
                    raise h11.RemoteProtocolError("request head too large", 431)
            return event
        except h11.RemoteProtocolError as exc:
            self.refusal_status = exc.error_status_hint
            raise


class LimitedH11Protocol(_HeadGuard, H11Protocol):
    """uvicorn's h11 protocol with the same bounds (h11 enforces the size itself)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limited_conn = _LimitedConnection(h11.SERVER, self.limits.max_bytes)
        self.conn = self._limited_conn
        self._in_head = True

    def _head_bytes_received(self) -> bool:
        return bool(self.conn.trailing_data[0])

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if not self._in_head and self.conn.their_state is h11.IDLE:
            self._in_head = True  # these bytes begin the next request's head
            self._begin_head()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._in_head = False

    def send_400_response(self, msg: str) -> None:
        status = self._limited_conn.refusal_status
        if status == 431:
            msg = too_large_message(self.limits)
        self._refuse(status, msg)


def install(limits: HeadLimits) -> None:
    """Make uvicorn use the bounded protocols (whichever parser it would have picked)."""
    from uvicorn import config

    _HeadGuard.limits = limits
    httptools_protocol = f"{__name__}:{LimitedHttpToolsProtocol.__name__}"
    config.HTTP_PROTOCOLS["auto"] = httptools_protocol  # uvicorn's auto: httptools if installed
    config.HTTP_PROTOCOLS["httptools"] = httptools_protocol
    config.HTTP_PROTOCOLS["h11"] = f"{__name__}:{LimitedH11Protocol.__name__}"
    log.debug("request heads limited to %d bytes and %gs", limits.max_bytes, limits.timeout_s)
