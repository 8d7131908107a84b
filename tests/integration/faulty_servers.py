"""Misbehaving servers for tests: a black hole, a proxy that fails chosen requests, an
unpluggable cable, and a collector of posted requests that can be made slow.

Each binds 127.0.0.1 on a free port and is a context manager that always stops.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import urlparse


class BlackHole:
    """Accepts TCP connections and never answers: a registry behind a dead load balancer."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.connections = 0
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            self.connections += 1
            self._held.append(conn)

    def __enter__(self) -> BlackHole:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sock.close()
        for conn in self._held:
            conn.close()
        self._thread.join(5)


class LocalHttpServer:
    """A threaded HTTP server on 127.0.0.1 (a free port) answering with ``handler``;
    a context manager that always stops it (its port then refuses connections)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        with contextlib.suppress(OSError):
            self._server.server_close()
        self._thread.join(5)


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class FlakyProxy(LocalHttpServer):
    """Forwards every request to ``upstream``, except that requests ``fail`` picks get a
    503 instead (``fail`` sees method and path and decides; it may count)."""

    def __init__(self, upstream: str, fail: Callable[[str, str], bool]) -> None:
        target = urlparse(upstream)
        self.failed = 0
        self.seen: list[tuple[str, str, int]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if fail(self.command, self.path):
                    proxy.failed += 1
                    proxy.seen.append((self.command, self.path, 503))
                    payload = b'{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "flaky"}'
                    self.send_response(503)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    payload = response.read()
                    proxy.seen.append((self.command, self.path, response.status))
                    self.send_response(response.status)
                    for key, value in response.getheaders():
                        if key.lower() not in _HOP_BY_HOP:
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                finally:
                    conn.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        super().__init__(Handler)


def first_n(n: int, matches: Callable[[str, str], bool]) -> Callable[[str, str], bool]:
    """A ``fail`` rule for FlakyProxy: the first ``n`` requests that ``matches`` picks."""
    left = [n]
    lock = threading.Lock()

    def fail(method: str, path: str) -> bool:
        if not matches(method, path):
            return False
        with lock:
            if left[0] > 0:
                left[0] -= 1
                return True
        return False

    return fail


class Cable:
    """A TCP forwarder to ``upstream`` that can be unplugged: ``cut()`` closes its
    listening socket and every forwarded connection (clients see connection refused, as
    from a stopped server), ``plug()`` listens again on the same port.

    An outage of the server behind it, without the minute a busy machine takes to
    restart an `mlflow server`."""

    def __init__(self, upstream: str) -> None:
        target = urlparse(upstream)
        self._upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.plug()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def plug(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            connections, self._open = self._open, []
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self._upstream, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._open += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for conn in (source, sink):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Cable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()


class Collector(LocalHttpServer):
    """An HTTP server that answers every POST 200 and keeps it (headers and body), e.g.
    the CloudEvents of an inference log sink; ``delay_s`` > 0 makes it a slow one (it
    sleeps before answering), and leaving the context closes its port (a down one)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.delay_s = 0.0
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if collector.delay_s:
                    time.sleep(collector.delay_s)
                else:
                    collector.received.append((dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(Handler)
