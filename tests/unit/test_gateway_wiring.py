"""The Gateway's wiring, through the HTTP app it feeds: each endpoint reaches the part
it needs (no registry, no model: the registry is never read, nothing is loaded)."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

from starlette.testclient import TestClient

from registry_watcher.deliveries import sign
from service.api.app import create_app
from service.config import Settings
from service.gateway import Gateway
from service.ops.metrics import get_metrics

SECRET = "whsec-wiring"


def gateway(**env: str) -> Gateway:
    settings = Settings.from_env(
        {"STAGESERVE_MODELS": "wired", "STAGESERVE_TARGETS": "Production", **env}
    )
    return Gateway(settings, registry=SimpleNamespace(), loader=SimpleNamespace())  # type: ignore[arg-type]


def test_health_and_state_come_from_the_state_view() -> None:
    gw = gateway()
    client = TestClient(create_app(lambda: gw))
    ping = client.get("/ping")
    assert ping.status_code == 503
    assert ping.json() == {
        "status": "not_ready",
        "reasons": ["wired Production: the registry has not been read yet"],
    }
    state = client.get("/admin/models")
    assert state.text.startswith('{\n  "worker": {')  # indented for people
    assert [m["name"] for m in state.json()["models"]] == ["wired"]
    traffic = client.get("/admin/models/wired/traffic").json()
    assert traffic == state.json()["models"][0]["traffic"]
    assert client.get("/admin/models/other/traffic").status_code == 404


def test_a_prediction_for_a_target_with_nothing_loaded_is_a_503() -> None:
    gw = gateway()
    answer = TestClient(create_app(lambda: gw)).post("/invocations", json={"inputs": [[1]]})
    assert answer.status_code == 503
    assert answer.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"


def test_an_accepted_webhook_makes_the_watcher_read_the_registry_now() -> None:
    gw = gateway(STAGESERVE_WEBHOOK_SECRET=SECRET)
    refreshes = get_metrics().webhook_refreshes.labels("webhook")
    before = refreshes._value.get()
    client = TestClient(create_app(lambda: gw))
    body = json.dumps({"data": {"name": "wired", "alias": "champion"}}).encode()
    stamp = str(int(time.time()))
    headers = {
        "x-mlflow-delivery-id": "d-1",
        "x-mlflow-timestamp": stamp,
        "x-mlflow-signature": sign(SECRET, "d-1", stamp, body),
    }
    accepted = client.post("/webhooks/mlflow", content=body, headers=headers)
    assert accepted.status_code == 202
    assert accepted.json() == {
        "status": "accepted",
        "message": "registry refresh triggered",
        "model": "wired",
    }
    assert refreshes._value.get() == before + 1
    replayed = client.post("/webhooks/mlflow", content=body, headers=headers)
    assert replayed.status_code == 409 and replayed.json()["error_code"] == "BAD_REQUEST"
    assert refreshes._value.get() == before + 1


def test_webhooks_are_off_without_a_secret() -> None:
    gw = gateway()
    off = TestClient(create_app(lambda: gw)).post("/webhooks/mlflow", content=b"{}")
    assert off.status_code == 404 and "STAGESERVE_WEBHOOK_SECRET" in off.json()["message"]


def test_error_answers_carry_a_request_id_and_feedback_reaches_the_intake(tmp_path) -> None:
    gw = gateway(STAGESERVE_RUNTIME_DIR=str(tmp_path))
    client = TestClient(create_app(lambda: gw))
    made = client.post("/invocations", json={"inputs": [[1]]})
    assert made.status_code == 503 and made.headers["X-Request-Id"]
    assert "X-Feedback-Id" not in made.headers  # an error names no version
    own = client.post("/invocations", json={}, headers={"X-Request-Id": "mine-1"})
    assert own.headers["X-Request-Id"] == "mine-1"
    feedback_id = gw.feedback_intake.signer.issue("wired", "Production", 3, time.time())
    answer = client.post("/feedback", json={"request_id": feedback_id, "reward": 1})
    assert answer.status_code == 200 and answer.json()["version"] == 3
    refused = client.post(
        "/feedback", json={"request_id": made.headers["X-Request-Id"], "reward": 1}
    )
    assert refused.status_code == 400 and "X-Feedback-Id" in refused.json()["message"]
    assert (tmp_path / "request-id.key").exists() and (tmp_path / "feedback-seen.sqlite").exists()
    gw.feedback_intake.close()
