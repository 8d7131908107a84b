"""What the log says during a registry outage: the whole error once, then one short line
per failed poll, and one line when the registry answers again.

MLflow's exception texts quote the whole request URL, filter query included (some 500
characters): printed at every poll of an outage they drown the log. So the first failed
poll logs the whole (redacted) error, later ones a one-line reason ("registry
unreachable: ConnectionError (ConnectionRefusedError) to http://127.0.0.1:5000, 14
failed polls since 22:01:03Z") with the whole error at DEBUG, and the first poll that
succeeds says how long it lasted. Pure: the watcher passes the errors and the clocks.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from registry_watcher.redact import redact, redact_url

MAX_WHERE_CHARS = 60
MAX_ERROR_CHARS = 2000  # a proxy's HTML error page, quoted by MLflow, can be long
_HTTP_STATUS = re.compile(r"error code (\d{3})")
# Wrappers that say nothing of the cause: the chain's next exception names it better.
_WRAPPERS = {"MlflowException", "RestException"}

Line = tuple[int, str]  # (level, message)


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes (``__cause__``, else ``__context__``), outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 20:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def short_reason(exc: BaseException) -> str:
    """The kind of failure in a few words: "ConnectionError (ConnectionRefusedError)",
    "ReadTimeout", "HTTP 503"."""
    chain = exception_chain(exc)
    named = [type(e).__name__ for e in chain if type(e).__name__ not in _WRAPPERS]
    if not named:
        status = _HTTP_STATUS.search(str(exc))
        return f"HTTP {status.group(1)}" if status else type(exc).__name__
    outer, root = named[0], named[-1]
    return outer if outer == root else f"{outer} ({root})"


def registry_place(registry_uri: str | None) -> str:
    """Where the registry is, shortly: scheme://host:port of a server, else the URI
    (credentials out, at most MAX_WHERE_CHARS)."""
    if not registry_uri:
        return "the registry"
    parts = urlsplit(registry_uri)
    if parts.scheme in ("http", "https") and parts.hostname:
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}"
    place = redact_url(registry_uri) or registry_uri
    return place if len(place) <= MAX_WHERE_CHARS else place[: MAX_WHERE_CHARS - 3] + "..."


def clock_utc(wall_time: float) -> str:
    return time.strftime("%H:%M:%SZ", time.gmtime(wall_time))


@dataclass(frozen=True)
class _Outage:
    began_wall: float
    began_monotonic: float


class OutageLog:
    """The lines to log for each poll's outcome; remembers when the outage in progress
    began. How many polls failed in a row is the watcher's count (its status), passed in."""

    def __init__(self, registry_uri: str | None) -> None:
        self._place = registry_place(registry_uri)
        self._outage: _Outage | None = None

    def failed(
        self, exc: BaseException, failures: int, wall: float, monotonic: float
    ) -> list[Line]:
        """Lines for the ``failures``-th failed poll in a row (the whole error is redacted
        here)."""
        whole = redact(f"{type(exc).__name__}: {exc}")[:MAX_ERROR_CHARS]
        if self._outage is None:
            self._outage = _Outage(wall, monotonic)
            return [(logging.WARNING, f"registry poll failed: {whole}")]
        short = (
            f"registry unreachable: {short_reason(exc)} to {self._place}, "
            f"{failures} failed polls since {clock_utc(self._outage.began_wall)}"
        )
        return [(logging.WARNING, short), (logging.DEBUG, f"registry poll failed: {whole}")]

    def succeeded(self, failures: int, monotonic: float) -> list[Line]:
        """Lines for a poll that worked after ``failures`` failed ones: one if it ends an
        outage."""
        if self._outage is None:
            return []
        outage, self._outage = self._outage, None
        lasted = max(0.0, monotonic - outage.began_monotonic)
        polls = "poll" if failures == 1 else "polls"
        return [
            (
                logging.INFO,
                f"registry reachable again after {lasted:.0f} s, {failures} failed {polls}",
            )
        ]
