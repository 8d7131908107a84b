"""No credential in any answer or log line: a gateway whose registry URI carries a
password, with an admin token (read from --admin-token-file), a webhook secret and MLflow
credentials set, through a registry outage and a failed admin write; then the CLI against
the dead registry."""

from __future__ import annotations

import os
import subprocess

import httpx
import psutil
import pytest

from tests.integration.harness import (
    ALL_FEATURES,
    Gateway,
    MlflowServer,
    Registry,
    run_cli,
    split_payload,
    wait_until,
)

pytestmark = pytest.mark.integration

PASSWORD = "S3cr3t-XYZ"
ADMIN_TOKEN = "adm1n-T0ken-QRS"
WEBHOOK_SECRET = "w3bhook-S3c-LMN"
TRACKING_PASSWORD = "envPassw0rd-UVW"
SECRETS = (PASSWORD, ADMIN_TOKEN, WEBHOOK_SECRET, TRACKING_PASSWORD)


class Collected:
    """Every answer's status, headers and body, as text to grep."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, label: str, response: httpx.Response) -> httpx.Response:
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.texts.append(f"== {label} {response.status_code}\n{headers}\n{response.text}")
        return response

    def cli(self, label: str, done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
        self.texts.append(f"== {label} rc={done.returncode}\n{done.stdout}\n{done.stderr}")
        return done


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "STAGESERVE_ADMIN_TOKEN": ADMIN_TOKEN}
    env["STAGESERVE_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    env["MLFLOW_TRACKING_PASSWORD"] = TRACKING_PASSWORD
    env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    return run_cli(*args, env=env)


def test_no_secret_in_any_answer_or_log(tmp_path, model_name) -> None:
    server = MlflowServer(tmp_path / "registry")  # its own: this test kills it
    server.start()
    gateway: Gateway | None = None
    seen = Collected()
    try:
        registry = Registry(server.uri)
        v1 = registry.register_ridge(model_name, ALL_FEATURES, alpha=1.0)
        registry.transition(model_name, v1.version, "Production")
        uri = f"http://user:{PASSWORD}@127.0.0.1:{server.port}"
        token_file = tmp_path / "admin-token"
        token_file.write_text(f"{ADMIN_TOKEN}\n")  # as a mounted secret or `echo` writes it
        gateway = Gateway(
            tmp_path, uri, [model_name], "--poll-interval", "0.3",
            "--admin-token-file", str(token_file),
            env={
                "STAGESERVE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "MLFLOW_TRACKING_USERNAME": "user",
                "MLFLOW_TRACKING_PASSWORD": TRACKING_PASSWORD,
                "STAGESERVE_MAX_BACKOFF": "1",
            },
        ).start()  # fmt: skip
        # The server ignores the credentials (no basic auth): the gateway serves.
        prediction = seen.add("predict", gateway.post("/invocations", json=split_payload()))
        assert prediction.status_code == 200
        state = seen.add("admin/models", gateway.get("/admin/models")).json()
        assert state["watcher"]["registry_uri"] == f"http://***@127.0.0.1:{server.port}"
        seen.add("ping", gateway.get("/ping"))
        seen.add("metrics", gateway.get("/metrics"))
        seen.add("traffic", gateway.get(f"/admin/models/{model_name}/traffic"))
        seen.add("webhook unsigned", gateway.post("/webhooks/mlflow", json={"x": 1}))
        policy_url = f"{gateway.url}/admin/models/{model_name}/traffic"
        policy = {"weights": {"Production": 100}}
        wrong = seen.add("admin write, wrong token", httpx.put(
            policy_url, json=policy, headers={"Authorization": "Bearer not-the-token"}, timeout=60
        ))  # fmt: skip
        assert wrong.status_code == 401, wrong.text
        accepted = seen.add("admin write", httpx.put(
            policy_url, json=policy, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60
        ))  # fmt: skip
        assert accepted.status_code == 200, accepted.text  # the token the file holds
        assert accepted.json()["policy"]["weights"] == {"Production": 100}
        gateway_processes = [psutil.Process(gateway.proc.pid), *gateway.descendants()]
        command_lines = [" ".join(p.cmdline()) for p in gateway_processes]  # what ps shows
        assert not any(ADMIN_TOKEN in line for line in command_lines)

        server.stop()  # outage: poll failures quote the URL in their exceptions
        assert wait_until(
            lambda: gateway.state()["watcher"]["consecutive_failures"] >= 3, 60, 0.2
        ), gateway.log_tail()
        down = seen.add("admin/models down", gateway.get("/admin/models")).json()
        assert down["watcher"]["last_error"]  # the error is said, without the password
        written = seen.add(
            "admin write down",
            httpx.put(
                f"{gateway.url}/admin/models/{model_name}/traffic",
                json={"weights": {"Production": 100}},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                timeout=60,
            ),
        )
        assert written.status_code == 503, written.text
        assert "Could not write the policy" in written.json()["message"]
        seen.add("predict down", gateway.post("/invocations", json=split_payload()))
        seen.add("ping down", gateway.get("/ping"))
        seen.add("metrics down", gateway.get("/metrics"))
        seen.add("traffic down", gateway.get(f"/admin/models/{model_name}/traffic"))
        status = seen.cli("status down", run_cli("status", "--url", gateway.url))
        assert status.returncode == 0, status.stderr  # fail static: still ready
        registry_line = status.stdout.splitlines()[1]
        assert registry_line.startswith(
            f"registry  http://***@127.0.0.1:{server.port}  UNREACHABLE"
        )

        shown = seen.cli("traffic show", cli("traffic", "show", model_name, "--registry-uri", uri))
        assert shown.returncode != 0 and "Traceback" not in shown.stderr
        listed = seen.cli("webhooks list", cli("webhooks", "list", "--registry-uri", uri))
        assert listed.returncode != 0 and "Traceback" not in listed.stderr
    finally:
        if gateway is not None:
            gateway.stop()
        server.stop()

    log = gateway.log.read_text(errors="replace")
    assert "registry poll failed" in log  # the failures were logged, with their cause
    assert f"from http://***@127.0.0.1:{server.port}" in log  # the start-up banner
    everything = "\n".join([*seen.texts, log])
    leaks = {secret: everything.count(secret) for secret in SECRETS}
    leaking = [line for line in everything.splitlines() if any(s in line for s in SECRETS)]
    assert leaks == dict.fromkeys(SECRETS, 0), (leaks, len(leaking), leaking[:10])
