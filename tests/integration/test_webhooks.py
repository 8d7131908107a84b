"""MLflow webhooks end to end: a real mlflow server delivers signed webhooks to the
gateway, which serves an alias move in about a second on every worker, with polling
as the safety net; forged, stale and replayed deliveries do nothing."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import uuid

import httpx
import pytest

from registry_watcher.deliveries import sign
from service.ops.processes import start_ticks
from service.ops.run_dirs import plain_serve_runtime_dir
from service.ops.run_dirs import sweep as sweep_run_dirs
from tests.integration.harness import (
    ALL_FEATURES,
    REPO_ROOT,
    Gateway,
    free_port,
    metric_samples,
    run_cli,
    split_payload,
    wait_until,
)
from tests.support.processes import ServerProcess, python_command, tail

pytestmark = pytest.mark.integration

SECRET = "whsec-integration"
POLL = 20.0
# A webhook-driven swap must land well before the first poll could (0.75 x POLL with
# jitter). "About a second" is a speed figure for bench/, not a bound for a loaded CI box.
WEBHOOK_BOUND = 6.0


def webhooks_cli(*args: str) -> subprocess.CompletedProcess:
    return run_cli("webhooks", *args)


def all_workers_serve(gateway: Gateway, version: str, streak: int = 12, **headers: str) -> bool:
    """`streak` answers in a row on new connections (spread over workers) from `version`."""
    return served_since(gateway, version, streak, **headers) is not None


def served_since(gateway: Gateway, version: str, streak: int = 12, **headers: str) -> float | None:
    """When the run of `streak` answers from `version` began, or None if one differed:
    by then every worker was serving it."""
    began = time.monotonic()
    for _ in range(streak):
        r = httpx.post(
            gateway.url + "/invocations", json=split_payload(), headers=headers, timeout=10
        )
        if r.status_code != 200 or r.headers["X-Model-Version"] != version:
            return None
    return began


def first_served(gateway: Gateway, version: str, timeout: float, **headers: str) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        began = served_since(gateway, version, **headers)
        if began is not None:
            return began
        time.sleep(0.02)
    raise AssertionError(f"version {version} not served by every worker in {timeout}s")


def test_webhooks_make_alias_moves_immediate(mlflow_server, registry, model_name, tmp_path) -> None:
    versions = [
        registry.register_ridge(model_name, ALL_FEATURES, alpha=a).version for a in (1.0, 0.5, 0.1)
    ]
    registry.set_alias(model_name, "champion", versions[0])
    next_version = str(int(versions[-1]) + 1)  # a pinned target waiting for its version
    gateway = Gateway(
        tmp_path, mlflow_server.uri, [model_name], "--target", "@champion",
        "--target", next_version, "--poll-interval", str(POLL), "--workers", "2",
        env={"STAGESERVE_WEBHOOK_SECRET": SECRET},
    ).start()  # fmt: skip
    webhook_id = None
    try:
        url = f"{gateway.url}/webhooks/mlflow"
        first = webhooks_cli(
            "register", "--url", url, "--secret", SECRET, "--registry-uri", mlflow_server.uri
        )
        assert first.returncode == 0, first.stderr
        assert "created" in first.stderr
        again = webhooks_cli(
            "register", "--url", url, "--secret", SECRET, "--registry-uri", mlflow_server.uri
        )
        assert again.returncode == 0 and "updated" in again.stderr
        listed = json.loads(webhooks_cli("list", "--registry-uri", mlflow_server.uri).stdout)
        mine = [w for w in listed if w["name"] == "stageserve"]
        assert len(mine) == 1 and mine[0]["url"] == url
        assert "model_version_alias.created" in mine[0]["events"]
        webhook_id = mine[0]["id"]
        assert wait_until(lambda: all_workers_serve(gateway, versions[0]), 60)

        timings = []
        for version in (versions[1], versions[2], versions[0]):
            moved_at = time.monotonic()
            registry.set_alias(model_name, "champion", version)
            assert wait_until(lambda v=version: all_workers_serve(gateway, v), 10, 0.02), (
                gateway.log_tail()
            )
            timings.append(time.monotonic() - moved_at)
        print(
            "\nalias move -> every worker serving it, with webhooks (s):",
            [round(t, 2) for t in timings],
        )
        assert max(timings) < WEBHOOK_BOUND < 0.75 * POLL, timings

        # Registering a version: model_version.created makes the pinned target serve it.
        pinned = {"X-Model-Target": next_version}
        assert gateway.post("/invocations", json=split_payload(), headers=pinned).status_code == 503
        created = registry.register_ridge(model_name, ALL_FEATURES, alpha=0.05)
        registered_at = time.monotonic()
        assert created.version == next_version

        new_version_in = first_served(gateway, next_version, 10, **pinned) - registered_at
        print(f"new version registered -> served by every worker: {new_version_in:.2f} s")
        assert new_version_in < WEBHOOK_BOUND

        metrics = gateway.get("/metrics").text
        webhooks = metric_samples(metrics, "stageserve_webhooks_total")
        assert webhooks[(("outcome", "accepted"),)] >= 4
        histogram = metric_samples(metrics, "stageserve_webhook_to_serving_seconds_count")
        assert sum(histogram.values()) >= 3

        # Forged, stale and replayed deliveries are refused and trigger nothing.
        body = json.dumps(
            {"entity": "model_version_alias", "action": "created", "data": {"name": model_name}}
        ).encode()
        now = str(int(time.time()))
        forged = httpx.post(url, content=body, headers={
            "X-MLflow-Delivery-Id": "x", "X-MLflow-Timestamp": now, "X-MLflow-Signature": "v1,AAAA",
        })  # fmt: skip
        assert forged.status_code == 401
        assert httpx.post(url, content=body).status_code == 401
        old = str(int(time.time()) - 3600)
        stale = httpx.post(url, content=body, headers={
            "X-MLflow-Delivery-Id": "y", "X-MLflow-Timestamp": old,
            "X-MLflow-Signature": sign(SECRET, "y", old, body),
        })  # fmt: skip
        assert stale.status_code == 400
        delivery_id = uuid.uuid4().hex
        signed = {
            "X-MLflow-Delivery-Id": delivery_id, "X-MLflow-Timestamp": now,
            "X-MLflow-Signature": sign(SECRET, delivery_id, now, body),
        }  # fmt: skip
        assert httpx.post(url, content=body, headers=signed).status_code == 202
        for _ in range(4):  # new connections: whichever worker gets it, it is a replay
            assert httpx.post(url, content=body, headers=signed).status_code == 409
        outcomes = metric_samples(gateway.get("/metrics").text, "stageserve_webhooks_total")
        assert outcomes[(("outcome", "bad_signature"),)] >= 2
        assert outcomes[(("outcome", "stale"),)] >= 1
        assert outcomes[(("outcome", "replay"),)] >= 4

        # Webhooks cut off: polling still gets there, within two poll intervals.
        registry.client.delete_webhook(webhook_id)
        webhook_id = None
        moved_at = time.monotonic()
        registry.set_alias(model_name, "champion", versions[1])
        assert wait_until(lambda: all_workers_serve(gateway, versions[1]), 2 * POLL + 5, 0.1)
        print(f"without webhooks: {time.monotonic() - moved_at:.2f} s (poll interval {POLL} s)")
    finally:
        if webhook_id is not None:
            registry.client.delete_webhook(webhook_id)
        gateway.stop()


def test_plain_bentoml_serve_workers_share_one_runtime_folder(
    mlflow_server, registry, model_name, tmp_path
) -> None:
    """A Bento container runs `bentoml serve`, not `stageserve serve`: its workers must
    still find each other for webhook fan-out and shared replay ids."""
    version = registry.register_ridge(model_name, ALL_FEATURES, alpha=1.0).version
    registry.transition(model_name, version, "Production")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STAGESERVE_", "MLFLOW_HTTP"))}
    env.update(
        STAGESERVE_MODELS=model_name,
        MLFLOW_TRACKING_URI=mlflow_server.uri,
        STAGESERVE_WORKERS="2",
        BENTOML_HOME=str(tmp_path / "bentoml"),
        PYTHONPATH=str(REPO_ROOT),
    )
    log = tmp_path / "bentoml-serve.log"
    command = python_command(
        "bentoml", "serve", "service.bento_service:StageServe",
        "--host", "127.0.0.1", "--port", str(port),
    )  # fmt: skip
    server = ServerProcess("bentoml serve", command, log, port, env=env)
    proc = server.launch().proc
    # Named after the supervisor (the workers' parent) and its start time, so that it can
    # be swept once the supervisor is gone.
    folder = plain_serve_runtime_dir(proc.pid)
    assert folder.endswith(f"stageserve-run-{proc.pid}-{start_ticks(proc.pid)}")
    try:
        assert wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/ping").status_code == 200, 120, 0.2
        ), tail(log)
        assert wait_until(
            lambda: len([f for f in os.listdir(folder) if f.startswith("worker-")]) == 2, 30
        ), (os.listdir(folder) if os.path.isdir(folder) else "no folder", tail(log))
    finally:
        server.stop()
    # What the next start does: the stopped server's folder goes, nobody else's.
    assert os.path.basename(folder) in sweep_run_dirs(tempfile.gettempdir())
    assert not os.path.exists(folder)
