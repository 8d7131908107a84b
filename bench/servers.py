"""The servers under test, each a real process on 127.0.0.1 and a free port, in its own
session, logging to the work folder, always stopped (with every descendant) at the end.

- peer: ``mlflow models serve`` (MLflow's scoring server: uvicorn, 1 worker by default;
  ``--workers`` sets uvicorn's worker count), one per model;
- stageserve: ``stageserve serve`` with every bench model;
- echo: ``bench/echo_service.py`` under ``bentoml serve``, the framework ceiling.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from bench import procs
from bench.settings import REPO_ROOT
from service.ops.processes import pid_alive


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class ServerError(RuntimeError):
    pass


class Server:
    """One server process: ``launch``, then ``wait_ready`` until ``ready_path`` is 200."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        env: dict[str, str],
        port: int,
        log: Path,
        ready_path: str,
        invocations_path: str,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.env = env
        self.port = port
        self.log = log
        self.ready_path = ready_path
        self.invocations_path = invocations_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def invocations_url(self) -> str:
        return self.base_url + self.invocations_path

    def launch(self) -> Server:
        """Start the process without waiting (servers start in parallel, then wait)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
                env=self.env,
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout: float = 300.0) -> Server:
        """Poll the readiness path until it answers 200 (never a fixed sleep)."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    raise ServerError(f"{self.name} exited at start:\n{tail(self.log)}")
                try:
                    if client.get(self.base_url + self.ready_path).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise ServerError(f"{self.name} not ready after {timeout:.0f} s:\n{tail(self.log)}")

    def wait_workers_ready(self, workers: int, timeout: float = 300.0) -> list[int]:
        """For stageserve: ``/ping`` answers for whichever worker took the connection, and
        each worker loads models on its own, so one ready answer does not mean all are.
        ``/admin/models`` names the answering worker: ask on fresh connections until
        every worker has said it is ready. Returns the worker pids."""
        deadline = time.monotonic() + timeout
        ready: set[int] = set()
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise ServerError(f"{self.name} exited:\n{tail(self.log)}")
            try:
                state = httpx.get(self.base_url + "/admin/models", timeout=5).json()
                if state.get("ready"):
                    ready.add(int(state["worker"]["pid"]))
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            pids = set(self.worker_pids())
            if len(pids) >= workers and pids <= ready:
                return sorted(pids)
            time.sleep(0.05)
        raise ServerError(f"{self.name}: not every worker ready in {timeout:.0f} s")

    def worker_pids(self) -> list[int]:
        """Descendants that serve requests (BentoML or uvicorn workers)."""
        if self.proc is None:
            return []
        markers = ("_bentoml_impl.worker", "multiprocessing.spawn", "multiprocessing-fork")
        kids = {pid: procs.cmdline(pid) for pid in procs.descendants(self.proc.pid)}
        workers = [pid for pid, line in kids.items() if any(m in line for m in markers)]
        # uvicorn with one worker serves in its own process (the peer's default).
        return workers or [pid for pid, line in kids.items() if "uvicorn" in line]

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM the group, wait, then SIGKILL the group and any descendant left (BentoML
        workers live in sessions of their own)."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        family = procs.descendants(proc.pid)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid)
                proc.wait(10)
        deadline = time.monotonic() + grace
        while any(pid_alive(pid) for pid in family) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in family:
            if pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _base_env(work_dir: Path) -> dict[str, str]:
    """The bench process's environment, with temporary files kept in the work folder
    (``mlflow models serve`` downloads the model to a temporary folder it never cleans)."""
    tmp = work_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "STAGESERVE_"))}
    env.update({"TMPDIR": str(tmp), "BENTOML_DO_NOT_TRACK": "true", "PYTHONUNBUFFERED": "1"})
    # `mlflow models serve` runs `uvicorn` from PATH: as in an activated virtualenv.
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in (venv_bin, env.get("PATH")) if p)
    return env


def peer(model: str, registry_uri: str, workers: int, work_dir: Path) -> Server:
    """``mlflow models serve`` for one registered model's Production version."""
    port = free_port()
    env = _base_env(work_dir)
    env["MLFLOW_TRACKING_URI"] = registry_uri
    command = [
        sys.executable, "-m", "mlflow", "models", "serve",
        "-m", f"models:/{model}/Production", "--env-manager", "local",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    log = work_dir / "logs" / f"peer-{model}-{port}.log"
    return Server(f"peer {model}", command, env, port, log, "/ping", "/invocations")


def stageserve(
    models: Sequence[str],
    registry_uri: str,
    workers: int,
    poll_interval: float,
    work_dir: Path,
) -> Server:
    """``stageserve serve`` as a user starts it, serving each model's Production stage."""
    port = free_port()
    env = _base_env(work_dir)
    env["STAGESERVE_MODEL_DIR"] = str(work_dir / f"models-{port}")
    binary = Path(sys.executable).with_name("stageserve")
    command = [
        str(binary) if binary.exists() else "stageserve", "serve",
        "--registry-uri", registry_uri, "--host", "127.0.0.1", "--port", str(port),
        *[arg for m in models for arg in ("--model", m)], "--target", "Production",
        "--workers", str(workers), "--poll-interval", str(poll_interval),
    ]  # fmt: skip
    log = work_dir / "logs" / f"stageserve-{port}.log"
    path = "/invocations" if len(models) == 1 else f"/models/{models[0]}/invocations"
    return Server("stageserve", command, env, port, log, "/ping", path)


def stageserve_path(model: str) -> str:
    return f"/models/{model}/invocations"


def echo(workers: int, work_dir: Path) -> Server:
    """The bare BentoML service (bench/echo_service.py), same worker count."""
    port = free_port()
    env = _base_env(work_dir)
    env["BENCH_ECHO_WORKERS"] = str(workers)
    env["BENTOML_HOME"] = str(work_dir / f"bentoml-echo-{port}")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    command = [
        sys.executable, "-m", "bentoml", "serve", "bench.echo_service:Echo",
        "--host", "127.0.0.1", "--port", str(port), "--working-dir", str(REPO_ROOT),
    ]  # fmt: skip
    log = work_dir / "logs" / f"echo-{port}.log"
    return Server("echo", command, env, port, log, "/readyz", "/invocations")
