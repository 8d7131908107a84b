"""One server process, for the tests and the bench alike: started in its own session on a
127.0.0.1 port, logging to a file, polled until a path answers 200 (never a fixed
sleep), and always stopped with every descendant.

BentoML's supervisor starts each worker in a session of its own, so a kill of the
server's process group does not reach them, and a supervisor that dies first leaves
them to init: every descendant ever seen is remembered and stopped by pid too
(``psutil.Process`` remembers the start time, so a reused pid is never killed).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
# What a BentoML worker's command line holds (the gateway's and the echo service's).
BENTOML_WORKER = "_bentoml_impl.worker.service"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    interval: float = 0.05,
    reraise: type[BaseException] | tuple[type[BaseException], ...] = (),
) -> bool:
    """Poll ``check`` until it is true or ``timeout`` passes (readiness polling).

    Exceptions of the ``reraise`` types end the wait at once; others count as "not yet".
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except reraise:
            raise
        except Exception:
            pass
        time.sleep(interval)
    return False


def tail(path: Path, lines: int = 60) -> str:
    """The last lines of a log file ("" when there is none)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop_group(proc: subprocess.Popen[Any], grace: float = 15.0) -> None:
    """SIGTERM the process group ``proc`` leads, SIGKILL it after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def python_command(module: str, *args: str) -> list[str]:
    """``python -m MODULE ARGS``, with this interpreter (the checkout's code, run from it)."""
    return [sys.executable, "-m", module, *args]


def stageserve_serve(registry_uri: str, port: int, models: Sequence[str], *extra: str) -> list[str]:
    """``stageserve serve`` as a user types it, on 127.0.0.1:``port``."""
    return python_command(
        "service.cli.main", "serve",
        "--registry-uri", registry_uri, "--host", "127.0.0.1", "--port", str(port),
        *[arg for m in models for arg in ("--model", m)], *extra,
    )  # fmt: skip


def mlflow_models_serve(model_uri: str, port: int, *extra: str) -> list[str]:
    """MLflow's own scoring server for one model, in this environment (the peer)."""
    return python_command(
        "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
        "--host", "127.0.0.1", "--port", str(port), *extra,
    )  # fmt: skip


def with_venv_path(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with this interpreter's bin/ first on PATH, as in an activated virtualenv:
    ``mlflow models serve`` runs ``uvicorn`` from PATH."""
    venv_bin = str(Path(sys.executable).parent)
    return {**env, "PATH": os.pathsep.join(p for p in (venv_bin, env.get("PATH")) if p)}


class ServerError(RuntimeError):
    """A server exited, or did not become ready in time (the message has its log's tail)."""


class ServerProcess:
    """One server: ``launch`` (no wait: servers may start side by side), ``wait_ready``,
    ``stop``. Restartable: ``launch`` again after ``stop`` reuses the port."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        log: Path,
        port: int,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path = REPO_ROOT,
        ready_path: str = "/ping",
        probe_timeout: float = 2.0,
        probe_interval: float = 0.1,
        stop_grace: float = 15.0,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.log = log
        self.port = port
        self.env = None if env is None else dict(env)  # None: ours, as it is at launch
        self.cwd = cwd
        self.ready_path = ready_path
        self.probe_timeout = probe_timeout
        self.probe_interval = probe_interval
        self.stop_grace = stop_grace
        self.proc: subprocess.Popen[bytes] | None = None
        self._family: dict[int, Any] = {}  # pid -> psutil.Process, every descendant seen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> ServerProcess:
        """Start the process in a session of its own, output to the log; do not wait."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout: float = 300.0, path: str | None = None) -> ServerProcess:
        """Poll ``path`` (default the ready path) until it answers 200. Stops the server
        and raises ServerError if it exits first or the time runs out."""
        path = path or self.ready_path

        def up() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise ServerError(f"{self.name} exited:\n{self.log_tail()}")
            return httpx.get(self.url + path, timeout=self.probe_timeout).status_code == 200

        try:
            ready = wait_until(up, timeout, self.probe_interval, reraise=ServerError)
        except ServerError:
            self.stop()
            raise
        if not ready:
            message = f"{self.name} did not answer {path} 200 in {timeout:.0f} s"
            self.stop()
            raise ServerError(f"{message}:\n{self.log_tail()}")
        self.descendants()  # remembered, for stop() to reach them even if orphaned
        return self

    def descendants(self) -> list[Any]:
        """The live descendants (psutil.Process), children first; all are remembered."""
        import psutil

        if self.proc is None:
            return []
        try:
            found = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        self._family.update((p.pid, p) for p in found)
        return found

    def worker_pids(self, *markers: str) -> list[int]:
        """Pids of the live descendants whose command line holds one of ``markers``
        (default: a BentoML worker's)."""
        wanted = markers or (BENTOML_WORKER,)
        return sorted(p.pid for p in self.descendants() if _cmdline_has(p, wanted))

    def stop(self) -> None:
        """SIGTERM the group and wait (a clean stop: the supervisor stops its workers),
        SIGKILL it after the grace; then give any descendant left 5 s and SIGKILL it:
        workers in sessions of their own, orphaned by a supervisor that died."""
        import psutil

        if self.proc is None:
            return
        self.descendants()
        family = list(self._family.values())
        proc, self.proc, self._family = self.proc, None, {}
        stop_group(proc, self.stop_grace)
        _, alive = psutil.wait_procs(family, timeout=5)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(alive, timeout=10)

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log, lines)


def _cmdline_has(process: Any, markers: Sequence[str]) -> bool:
    try:
        line = " ".join(process.cmdline())
    except Exception:  # gone, or a zombie
        return False
    return process.is_running() and any(m in line for m in markers)
