"""Real processes for integration tests: an `mlflow server` and the stageserve gateway.

Both bind 127.0.0.1 on free ports, log to files in the test's temp folder, and are
always stopped (process group killed) even when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
# Set for the test process only (see tests/conftest.py), never passed to the gateway,
# which has its own retry policy.
TEST_ONLY_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
ALL_FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
ROW = [0.04, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.02]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def _stop_group(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# What an MLflow server needs to deliver webhooks to a gateway on 127.0.0.1 (the README
# says the same to users). A short webhook cache TTL makes a webhook registered during a
# test receive events at once (MLflow caches the webhook list per event, 60 s default).
WEBHOOK_SERVER_ENV = {
    "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
    "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
    "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": "0gO0Bn7hX0xPWeW3rBDUYBLUvjfbW5dlZb1-IM8uzGk=",
    "MLFLOW_WEBHOOK_CACHE_TTL": "1",
}
# MLflow 3.17 starts a job runner with seven huey consumers (about a core here) unless
# told not to: it slows the suite and skews every timing measured beside it.
SERVER_ENV = {**WEBHOOK_SERVER_ENV, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


class MlflowServer:
    """`mlflow server` with a SQLite backend and a local artifact root; restartable."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = root / "mlflow-server.log"
        root.mkdir(parents=True, exist_ok=True)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def artifact_root(self) -> Path:
        return self.root / "artifacts"

    def start(self, timeout: float = 60.0) -> None:
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination", str(self.artifact_root),
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **SERVER_ENV},
            )
        ok = wait_until(
            lambda: httpx.get(f"{self.uri}/health", timeout=1).status_code == 200, timeout, 0.2
        )
        if not ok:
            self.stop()
            raise RuntimeError(f"mlflow server did not start:\n{_tail(self.log)}")

    def stop(self) -> None:
        """Stop like an outage: uvicorn's graceful shutdown would wait on the gateway's
        keep-alive connection, so it gets one second before the kill."""
        if self.proc is not None:
            _stop_group(self.proc, timeout=1.0)
            self.proc = None


@dataclass
class Registered:
    name: str
    version: str
    model: Any  # the fitted estimator, to compute expected predictions
    features: list[str]

    def expected(self, row: Sequence[float] = ROW) -> float:
        import pandas as pd

        frame = pd.DataFrame([row], columns=ALL_FEATURES)[self.features]
        return float(self.model.predict(frame)[0])


class Registry:
    """Writes to the registry the way an MLOps engineer would, through MlflowClient."""

    def __init__(self, uri: str) -> None:
        import mlflow

        self.uri = uri
        self.client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)

    def _use(self) -> None:
        """Point MLflow's global URIs here: log_model and registration use them, and
        another test's Registry may have pointed them at a server that is gone."""
        import mlflow

        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)

    def register_ridge(self, name: str, features: Sequence[str], alpha: float) -> Registered:
        import mlflow
        from sklearn.datasets import load_diabetes
        from sklearn.linear_model import Ridge

        X, y = load_diabetes(return_X_y=True, as_frame=True)
        X = X[list(features)]
        model = Ridge(alpha=alpha).fit(X, y)
        self._use()
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                input_example=X.head(2),
                registered_model_name=name,
                pip_requirements=["scikit-learn", "pandas"],
            )
        return Registered(name, str(info.registered_model_version), model, list(features))

    def register_from_code(self, name: str, code: str, tmp: Path) -> str:
        """Register a models-from-code pyfunc (e.g. one whose predict raises)."""
        import mlflow
        import pandas as pd

        path = tmp / f"{name}_model.py"
        path.write_text(code)
        self._use()
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(path),
                input_example=pd.DataFrame([ROW], columns=ALL_FEATURES),
                registered_model_name=name,
                pip_requirements=["pandas"],
            )
        return str(info.registered_model_version)

    def transition(self, name: str, version: str, stage: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.client.transition_model_version_stage(name, version, stage)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(name, alias, version)

    def artifact_dir(self, server: MlflowServer, name: str, version: str) -> Path:
        """Where the server keeps a version's files (to break them on purpose)."""
        source = self.client.get_model_version(name, version).source  # models:/m-<id>
        model_id = source.rsplit("/", 1)[-1]
        matches = list(server.artifact_root.glob(f"*/models/{model_id}/artifacts"))
        assert matches, f"no artifacts for {source} under {server.artifact_root}"
        return matches[0]


def _is_worker(process: Any) -> bool:
    try:
        return "_bentoml_impl.worker.service" in process.cmdline()
    except Exception:  # gone, or a zombie
        return False


class Gateway:
    """`stageserve serve` as a user starts it, in its own process group."""

    def __init__(
        self,
        root: Path,
        registry_uri: str,
        models: Sequence[str],
        *extra: str,
        env: dict[str, str] | None = None,
    ):
        self.root = root
        self.extra_env = env or {}
        self.port = free_port()
        self.log = root / f"stageserve-{self.port}.log"
        self.command = [
            sys.executable, "-m", "service.cli.main", "serve",
            "--registry-uri", registry_uri, "--host", "127.0.0.1", "--port", str(self.port),
            *[arg for m in models for arg in ("--model", m)], *extra,
        ]  # fmt: skip
        self.proc: subprocess.Popen | None = None
        self.cwd = REPO_ROOT  # where the user types the command
        self._workers_seen: dict[int, Any] = {}  # pid -> psutil.Process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_ready: bool = True, timeout: float = 120.0) -> Gateway:
        env = {k: v for k, v in os.environ.items() if k not in TEST_ONLY_ENV}
        env["PYTHONPATH"] = str(REPO_ROOT)
        env["STAGESERVE_MODEL_DIR"] = str(self.root / f"models-{self.port}")
        env.update(self.extra_env)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=env,
                start_new_session=True,
            )
        path = "/ping" if wait_ready else "/livez"

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"stageserve exited:\n{_tail(self.log)}")
            return self.get(path).status_code == 200

        if not wait_until(up, timeout, 0.1, reraise=RuntimeError):
            self.stop()
            raise RuntimeError(f"stageserve did not become {path} 200:\n{_tail(self.log)}")
        if wait_ready and not wait_until(self._settled, timeout, 0.1):
            self.stop()
            raise RuntimeError(f"stageserve targets did not settle:\n{_tail(self.log)}")
        self.worker_pids()  # remembered, for stop() to reach them even if orphaned
        return self

    def _settled(self) -> bool:
        """Readiness waits only for required targets; tests that pin an optional one
        (Staging, a version) need it loaded too, or known to be empty or failing."""
        settled = {"ready", "empty", "failed"}
        models = self.state()["models"]
        return all(t["status"] in settled for m in models for t in m["targets"])

    def worker_pids(self) -> list[int]:
        """Pids of the gateway's worker processes: children of the BentoML supervisor
        (the process the CLI became), which start their own sessions."""
        import psutil

        if self.proc is None:
            return []
        try:
            children = psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []
        workers = [c for c in children if c.is_running() and _is_worker(c)]
        self._workers_seen.update((w.pid, w) for w in workers)
        return sorted(w.pid for w in workers)

    def stop(self) -> None:
        """Stop the supervisor's process group, then any worker it left behind: workers
        run in their own sessions, so a group kill (or a supervisor killed before it
        stopped them) does not reach them."""
        if self.proc is None:
            return
        import psutil

        try:
            workers = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            workers = []
        # Workers seen earlier too: a supervisor that died first left its workers to init.
        workers += [
            w for pid, w in self._workers_seen.items() if pid not in {c.pid for c in workers}
        ]
        _stop_group(self.proc)
        self.proc = None
        # psutil.Process remembers each process's start time: a reused pid is not killed.
        _, alive = psutil.wait_procs(workers, timeout=5)
        for worker in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.kill()
        psutil.wait_procs(alive, timeout=10)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=30, **kwargs)

    def state(self) -> dict[str, Any]:
        return self.get("/admin/models").json()

    def target_state(self, model: str, target: str) -> dict[str, Any]:
        for entry in self.state()["models"]:
            if entry["name"] == model:
                for t in entry["targets"]:
                    if t["target"] == target:
                        return t
        raise KeyError((model, target))

    def log_tail(self) -> str:
        return _tail(self.log)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`stageserve ARGS...` as a user runs it (in ``env``, default ours); output captured."""
    return subprocess.run(
        [sys.executable, "-m", "service.cli.main", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def split_payload(rows: Sequence[Sequence[float]] = (ROW,)) -> dict[str, Any]:
    return {"dataframe_split": {"columns": ALL_FEATURES, "data": [list(r) for r in rows]}}


def metric_samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples of one metric family from Prometheus text, keyed by sorted labels."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out
