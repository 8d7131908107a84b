"""What the Gateway shows (/ping reasons, /admin/models, the admin-write 503) carries
no credential, even when a load or registry error quotes one."""

from __future__ import annotations

import pytest

from registry_watcher import redact
from service.config import Settings
from service.errors import ServingError, client_error
from service.gateway import Gateway
from service.ops.state_view import state_json
from service.traffic.control import PolicyWriteFailed

PASSWORD = "S3cr3t-XYZ"
TOKEN = "adm1n-T0ken-QRS"


class DownRegistry:
    def search(self, names):
        raise ConnectionError(f"cannot reach http://user:{PASSWORD}@h:5000/api")

    def get_version(self, model, version):
        return None

    def set_model_tag(self, model, key, value):
        raise ConnectionError(f"POST http://user:{PASSWORD}@h:5000/api?token={TOKEN} refused")

    delete_model_tag = set_model_tag


@pytest.fixture
def gateway(monkeypatch, tmp_path) -> Gateway:
    env = {
        "STAGESERVE_MODELS": "m",
        "STAGESERVE_REGISTRY_URI": f"http://user:{PASSWORD}@h:5000",
        "STAGESERVE_ADMIN_TOKEN": TOKEN,
    }
    redact.configure(redact.configured_secrets(env))
    monkeypatch.setattr("mlflow.set_tracking_uri", lambda uri: None)
    monkeypatch.setattr("mlflow.set_registry_uri", lambda uri: None)
    try:
        yield Gateway(Settings.from_env(env), registry=DownRegistry(), loader=object())
    finally:
        redact.configure(())


def test_unready_reasons_are_redacted(gateway, monkeypatch) -> None:
    monkeypatch.setattr(
        gateway.pool,
        "unready_reasons",
        lambda: [f"m Production: version 1 failed to load: GET http://u:{PASSWORD}@h/a failed"],
    )
    reasons = gateway.readiness.unready_reasons()
    assert reasons == ["m Production: version 1 failed to load: GET http://***@h/a failed"]


def test_the_state_view_is_redacted(gateway) -> None:
    gateway.watcher.poll_once()
    shown = str(state_json(gateway.view.state()))
    assert PASSWORD not in shown
    assert "http://***@h:5000" in shown  # both the URI and the last error say where


def test_the_admin_write_error_is_redacted(gateway) -> None:
    with pytest.raises(ServingError) as info:
        try:
            gateway.traffic.write("m", None)
        except PolicyWriteFailed as failed:  # answered as service/errors.py says
            raise client_error(failed) from None
    assert info.value.status == 503
    assert PASSWORD not in info.value.message and TOKEN not in info.value.message
