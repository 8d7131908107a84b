"""The servers under test, each a real process on 127.0.0.1 and a free port, in its own
session, logging to the work folder, always stopped (with every descendant) at the end.

- peer: ``mlflow models serve`` (MLflow's scoring server: uvicorn, 1 worker by default;
  ``--workers`` sets uvicorn's worker count), one per model;
- stageserve: ``stageserve serve`` with every bench model;
- echo: ``bench/echo_service.py`` under ``bentoml serve``, the framework ceiling.

Starting, readiness polling and stopping are the tests' own (tests/support/processes.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from bench.settings import REPO_ROOT
from tests.support.processes import (
    BENTOML_WORKER,
    ServerError,
    ServerProcess,
    free_port,
    mlflow_models_serve,
    python_command,
    stageserve_serve,
    with_venv_path,
)

__all__ = ["Server", "ServerError", "echo", "peer", "stageserve", "stageserve_path"]

# What serves requests: BentoML workers, or uvicorn's (spawned or forked) workers.
WORKER_MARKERS = (BENTOML_WORKER, "multiprocessing.spawn", "multiprocessing-fork")


class Server(ServerProcess):
    """A server under load: its invocations URL, and its workers."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        env: Mapping[str, str],
        port: int,
        log: Path,
        ready_path: str,
        invocations_path: str,
    ) -> None:
        super().__init__(name, command, log, port, env=env, ready_path=ready_path)
        self.invocations_path = invocations_path

    @property
    def base_url(self) -> str:
        return self.url

    @property
    def invocations_url(self) -> str:
        return self.url + self.invocations_path

    def wait_workers_ready(self, workers: int, timeout: float = 300.0) -> list[int]:
        """For stageserve: ``/ping`` answers for whichever worker took the connection, and
        each worker loads models on its own, so one ready answer does not mean all are.
        ``/admin/models`` names the answering worker: ask on fresh connections until
        every worker has said it is ready. Returns the worker pids."""
        deadline = time.monotonic() + timeout
        ready: set[int] = set()
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise ServerError(f"{self.name} exited:\n{self.log_tail(40)}")
            try:
                state = httpx.get(self.url + "/admin/models", timeout=5).json()
                if state.get("ready"):
                    ready.add(int(state["worker"]["pid"]))
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            pids = set(self.worker_pids())
            if len(pids) >= workers and pids <= ready:
                return sorted(pids)
            time.sleep(0.05)
        raise ServerError(f"{self.name}: not every worker ready in {timeout:.0f} s")

    def worker_pids(self, *markers: str) -> list[int]:
        """Descendants that serve requests (BentoML or uvicorn workers); uvicorn with one
        worker serves in its own process (the peer's default)."""
        workers = super().worker_pids(*(markers or WORKER_MARKERS))
        return workers or super().worker_pids("uvicorn")


def _base_env(work_dir: Path) -> dict[str, str]:
    """The bench process's environment, with temporary files kept in the work folder
    (``mlflow models serve`` downloads the model to a temporary folder it never cleans)."""
    tmp = work_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "STAGESERVE_"))}
    env.update({"TMPDIR": str(tmp), "BENTOML_DO_NOT_TRACK": "true", "PYTHONUNBUFFERED": "1"})
    return with_venv_path(env)


def peer(model: str, registry_uri: str, workers: int, work_dir: Path) -> Server:
    """``mlflow models serve`` for one registered model's Production version."""
    port = free_port()
    env = _base_env(work_dir)
    env["MLFLOW_TRACKING_URI"] = registry_uri
    command = mlflow_models_serve(f"models:/{model}/Production", port, "--workers", str(workers))
    log = work_dir / "logs" / f"peer-{model}-{port}.log"
    return Server(f"peer {model}", command, env, port, log, "/ping", "/invocations")


def stageserve(
    models: Sequence[str],
    registry_uri: str,
    workers: int,
    poll_interval: float,
    work_dir: Path,
    settings: Mapping[str, str] | None = None,
) -> Server:
    """``stageserve serve`` as a user starts it, serving each model's Production stage;
    ``settings``: STAGESERVE_* variables to set (the inference log's, a feedback token)."""
    port = free_port()
    env = _base_env(work_dir)
    env["STAGESERVE_MODEL_DIR"] = str(work_dir / f"models-{port}")
    env.update(settings or {})
    command = stageserve_serve(
        registry_uri, port, models,
        "--target", "Production", "--workers", str(workers), "--poll-interval", str(poll_interval),
    )  # fmt: skip
    log = work_dir / "logs" / f"stageserve-{port}.log"
    path = "/invocations" if len(models) == 1 else stageserve_path(models[0])
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
    command = python_command(
        "bentoml", "serve", "bench.echo_service:Echo",
        "--host", "127.0.0.1", "--port", str(port), "--working-dir", str(REPO_ROOT),
    )  # fmt: skip
    log = work_dir / "logs" / f"echo-{port}.log"
    return Server("echo", command, env, port, log, "/readyz", "/invocations")
