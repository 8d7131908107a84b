"""Real processes for integration tests: an `mlflow server` and the stageserve gateway,
and the registry the tests write to.

Both bind 127.0.0.1 on free ports, log to files in the test's temp folder, and are
always stopped (process group and every worker) even when a test fails. The process
mechanics are tests/support/processes.py (shared with the bench); the models are
service/cli/diabetes_registry.py (shared with the demo and the bench).
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from service.cli import diabetes_registry
from service.cli.diabetes_registry import DiabetesRegistry, RegisteredVersion, RidgeRecipe
from tests.support.processes import (
    REPO_ROOT,
    ServerError,
    ServerProcess,
    free_port,
    python_command,
    stageserve_serve,
    wait_until,
)

# Set for the test process only (see tests/conftest.py), never passed to the gateway,
# which has its own retry policy.
TEST_ONLY_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
ALL_FEATURES = list(diabetes_registry.ALL_FEATURES)
ROW = [0.04, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, 0.0, 0.02, -0.02]


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


class MlflowServer(ServerProcess):
    """`mlflow server` with a SQLite backend and a local artifact root; restartable."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        port = free_port()
        command = python_command(
            "mlflow", "server",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination", str(self.artifact_root),
        )  # fmt: skip
        # Stop like an outage: uvicorn's graceful shutdown would wait on the gateway's
        # keep-alive connection, so it gets one second before the kill.
        super().__init__(
            "mlflow server", command, root / "mlflow-server.log", port,
            ready_path="/health", probe_timeout=1.0, probe_interval=0.2, stop_grace=1.0,
        )  # fmt: skip

    @property
    def uri(self) -> str:
        return self.url

    @property
    def artifact_root(self) -> Path:
        return self.root / "artifacts"

    def start(self, timeout: float = 60.0) -> None:
        self.env = {**os.environ, **SERVER_ENV}
        self.launch().wait_ready(timeout)


class Registered(RegisteredVersion):
    """A registered version, and the answer it gives."""

    def expected(self, row: Sequence[float] = ROW) -> float:
        import pandas as pd

        frame = pd.DataFrame([row], columns=ALL_FEATURES)[list(self.features)]
        return float(self.model.predict(frame)[0])


class Registry(DiabetesRegistry):
    """Writes to the registry the way an MLOps engineer would, through MlflowClient."""

    def register_ridge(self, name: str, features: Sequence[str], alpha: float) -> Registered:
        version = self.register(name, RidgeRecipe(alpha=alpha, features=tuple(features)))
        return Registered(version.name, version.version, version.model, version.features)

    def register_from_code(self, name: str, code: str, tmp: Path) -> str:
        """Register a models-from-code pyfunc (e.g. one whose predict raises)."""
        import mlflow
        import pandas as pd

        path = tmp / f"{name}_model.py"
        path.write_text(code)
        self.use()
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(path),
                input_example=pd.DataFrame([ROW], columns=ALL_FEATURES),
                registered_model_name=name,
                pip_requirements=["pandas"],
            )
        return str(info.registered_model_version)

    def artifact_dir(self, server: MlflowServer, name: str, version: str) -> Path:
        """Where the server keeps a version's files (to break them on purpose)."""
        source = self.client.get_model_version(name, version).source  # models:/m-<id>
        model_id = source.rsplit("/", 1)[-1]
        matches = list(server.artifact_root.glob(f"*/models/{model_id}/artifacts"))
        assert matches, f"no artifacts for {source} under {server.artifact_root}"
        return matches[0]


class Gateway(ServerProcess):
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
        port = free_port()
        command = stageserve_serve(registry_uri, port, models, *extra)
        log = root / f"stageserve-{port}.log"
        # cwd: where the user types the command (a test may move it before start()).
        super().__init__("stageserve", command, log, port, cwd=REPO_ROOT, probe_timeout=10.0)

    def start(self, wait_ready: bool = True, timeout: float = 120.0) -> Gateway:
        env = {k: v for k, v in os.environ.items() if k not in TEST_ONLY_ENV}
        env["PYTHONPATH"] = str(REPO_ROOT)
        env["STAGESERVE_MODEL_DIR"] = str(self.root / f"models-{self.port}")
        env.update(self.extra_env)
        self.env = env
        self.launch().wait_ready(timeout, "/ping" if wait_ready else "/livez")
        if wait_ready and not wait_until(self._settled, timeout, 0.1):
            self.stop()
            raise ServerError(f"stageserve targets did not settle:\n{self.log_tail()}")
        return self

    def _settled(self) -> bool:
        """Readiness waits only for required targets; tests that pin an optional one
        (Staging, a version) need it loaded too, or known to be empty or failing."""
        settled = {"ready", "empty", "failed"}
        models = self.state()["models"]
        return all(t["status"] in settled for m in models for t in m["targets"])

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


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`stageserve ARGS...` as a user runs it (in ``env``, default ours); output captured."""
    return subprocess.run(
        python_command("service.cli.main", *args),
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


class Load:
    """A few clients sending requests until stopped; records every outcome."""

    def __init__(self, url: str, clients: int = 2, headers: dict[str, str] | None = None):
        self.url = url
        self.headers = headers or {}
        self.results: list[tuple[int, str]] = []
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._loop) for _ in range(clients)]

    def _loop(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop_event.is_set():
                try:
                    r = client.post(
                        self.url + "/invocations", json=split_payload(), headers=self.headers
                    )
                    self.results.append((r.status_code, r.headers.get("X-Model-Version", "")))
                except Exception as exc:
                    self.results.append((0, repr(exc)))

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(30)

    def failures(self) -> list[tuple[int, str]]:
        return [r for r in self.results if r[0] != 200]
