"""What `stageserve serve` checks before it becomes ``bentoml serve``: that the port is
free and that no other gateway uses its runtime folder.

A second gateway started on a busy port used to reach BentoML, which wipes the
Prometheus folder under ``$BENTOML_HOME`` (inside the runtime folder, keyed by port)
before it finds the port taken: the running gateway's metrics were gone and the user got
a long circus traceback. Both checks run before anything touches the runtime folder.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket

LOCK_FILE = "gateway.lock"


class GuardError(RuntimeError):
    """Why this gateway must not start; one line, meant for the user."""


def check_port_free(host: str, port: int) -> None:
    """Bind the address the way the server will (SO_REUSEADDR), then let it go."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise GuardError(f"cannot listen on {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise GuardError(f"port {port} is in use; pick another with --port") from None
            raise GuardError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def hold_runtime_dir(runtime_dir: str) -> int:
    """Lock the runtime folder for the life of the server; returns the lock's fd.

    The fd is inheritable and the lock is a flock, so it survives the ``exec`` into
    BentoML and is released only when that process (and any child holding it) ends.
    """
    os.makedirs(runtime_dir, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(runtime_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise GuardError(
            f"another gateway is using {runtime_dir}; stop it, pick another --port "
            "or set STAGESERVE_RUNTIME_DIR"
        ) from None
    os.set_inheritable(fd, True)
    return fd
