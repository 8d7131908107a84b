"""A new user's natural mistakes, made with the real CLI: a second gateway on a busy
port, a relative SQLite URI typed in another directory, a misspelt model name."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest

from tests.integration.harness import (
    ALL_FEATURES,
    REPO_ROOT,
    Gateway,
    metric_samples,
    split_payload,
    wait_until,
)

pytestmark = pytest.mark.integration


def stageserve(*args: str, cwd=REPO_ROOT, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "service.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def successes(gateway: Gateway, model: str) -> float:
    samples = metric_samples(gateway.get("/metrics").text, "stageserve_requests_total")
    return sum(v for labels, v in samples.items() if dict(labels).get("outcome") == "success")


def test_a_second_gateway_on_a_busy_port_leaves_the_first_alone(
    mlflow_server, registry, model_name, tmp_path
) -> None:
    v1 = registry.register_ridge(model_name, ALL_FEATURES, alpha=1.0)
    registry.transition(model_name, v1.version, "Production")
    gateway = Gateway(tmp_path, mlflow_server.uri, [model_name]).start()
    try:
        for _ in range(5):
            assert gateway.post("/invocations", json=split_payload()).status_code == 200
        assert successes(gateway, model_name) == 5
        started = time.monotonic()
        second = stageserve(
            "serve", "--registry-uri", mlflow_server.uri, "--model", model_name,
            "--host", "127.0.0.1", "--port", str(gateway.port),
        )  # fmt: skip
        took = time.monotonic() - started
        assert second.returncode != 0
        assert second.stderr == (
            f"stageserve: port {gateway.port} is in use; pick another with --port\n"
        ), second.stderr
        assert took < 30  # fast: no server was started (measured: about 1-2 s, the imports)
        # The running gateway is untouched: its metrics are all there, it still serves.
        assert successes(gateway, model_name) == 5
        assert gateway.get("/ping").status_code == 200
        assert gateway.post("/invocations", json=split_payload()).status_code == 200
        assert successes(gateway, model_name) == 6
    finally:
        gateway.stop()


def test_a_relative_sqlite_uri_means_the_callers_directory(tmp_path) -> None:
    """`stageserve serve` and `stageserve traffic` both read ./<dir>/mlflow.db of the
    directory the user is in, and nothing is created inside the checkout."""
    folder = f"reg-{uuid.uuid4().hex[:8]}"
    seeded = stageserve("demo", "--seed-only", "--dir", str(tmp_path / folder), timeout=300)
    assert seeded.returncode == 0, seeded.stderr
    relative = f"sqlite:///{folder}/mlflow.db"
    gateway = Gateway(tmp_path, relative, ["diabetes"], "--poll-interval", "0.5")
    gateway.cwd = tmp_path  # the user's directory, not the checkout
    try:
        gateway.start()
        answer = gateway.post("/invocations", json=split_payload())
        assert answer.status_code == 200 and answer.headers["X-Model-Version"] == "1"
        assert gateway.state()["watcher"]["registry_uri"] == (
            f"sqlite:///{tmp_path / folder / 'mlflow.db'}"
        )
    finally:
        gateway.stop()
    shown = stageserve("traffic", "show", "diabetes", "--registry-uri", relative, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert not (REPO_ROOT / folder).exists()


def test_a_misspelt_model_is_named_on_the_first_poll(
    mlflow_server, registry, model_name, tmp_path
) -> None:
    v1 = registry.register_ridge(model_name, ALL_FEATURES, alpha=1.0)
    registry.transition(model_name, v1.version, "Production")
    misspelt = model_name[:-2] + model_name[-1] + model_name[-2]
    if misspelt == model_name:
        misspelt = model_name[:-1] + ("x" if model_name[-1] != "x" else "y")
    gateway = Gateway(tmp_path, mlflow_server.uri, [misspelt], "--poll-interval", "0.2")
    try:
        gateway.start(wait_ready=False)
        hint = f"model '{misspelt}' not found in the registry; did you mean '{model_name}'?"
        assert wait_until(lambda: hint in gateway.log.read_text(), 60, 0.2), gateway.log_tail()
        polls = gateway.state()["watcher"]["polls"]
        assert wait_until(lambda: gateway.state()["watcher"]["polls"] >= polls + 5, 60, 0.2)
        lines = [line for line in gateway.log.read_text().splitlines() if hint in line]
        assert len(lines) == 1 and "WARNING" in lines[0], lines  # once, not every poll
        assert gateway.get("/ping").status_code == 503
    finally:
        gateway.stop()
