"""Fail static (issue 9, item 1): the registry losing a served model, or emptying its
required target, never takes the gateway down; the target is flagged stale until the
registry names a version again. Against a real `mlflow server` and the real gateway,
under a steady request load."""

from __future__ import annotations

import pytest

from tests.integration.harness import (
    ALL_FEATURES,
    Gateway,
    Load,
    Registry,
    metric_samples,
    split_payload,
    wait_until,
)

pytestmark = pytest.mark.integration

POLL = 0.5
SETTLE = 4 * POLL + 10  # a couple of polls, on a loaded machine


def _answers(gateway: Gateway, version: str, expected: float | None = None) -> bool:
    r = gateway.post("/invocations", json=split_payload())
    if r.status_code != 200 or r.headers["X-Model-Version"] != version:
        return False
    return expected is None or r.json()["predictions"][0] == pytest.approx(expected)


def _gauge(gateway: Gateway, name: str, model: str, target: str = "Production") -> float:
    samples = metric_samples(gateway.get("/metrics").text, name)
    return samples[(("model", model), ("target", target))]


class Phase:
    """One registry accident under load: what the clients saw while it lasted."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self.start = len(load.results)

    def outcomes(self) -> list[tuple[int, str]]:
        return self.load.results[self.start :]


def _goes_stale(gateway: Gateway, model: str, reason: str) -> dict:
    assert wait_until(
        lambda: gateway.target_state(model, "Production")["status"] == "stale", SETTLE
    ), gateway.log_tail()
    state = gateway.target_state(model, "Production")
    assert state["stale_reason"] == reason
    assert gateway.get("/ping").status_code == 200
    assert gateway.get("/readyz").status_code == 200
    assert _gauge(gateway, "stageserve_target_stale", model) == 1
    assert _gauge(gateway, "stageserve_target_ready", model) == 1
    assert _gauge(gateway, "stageserve_registry_version", model) == 0
    assert _gauge(gateway, "stageserve_loaded_version", model) == state["version"]
    return state


def _recovers(gateway: Gateway, model: str, version: str, expected: float) -> None:
    assert wait_until(lambda: _answers(gateway, version, expected), SETTLE), gateway.log_tail()
    assert wait_until(
        lambda: gateway.target_state(model, "Production")["status"] == "ready", SETTLE
    )
    assert gateway.target_state(model, "Production")["stale_reason"] is None
    assert _gauge(gateway, "stageserve_target_stale", model) == 0


def _more_requests(load: Load, count: int = 20) -> None:
    """Let the load send some more requests (so every phase has requests in it)."""
    floor = len(load.results) + count
    assert wait_until(lambda: len(load.results) >= floor, 30)


def test_archived_renamed_and_deleted_models_keep_serving(
    mlflow_server, registry: Registry, model_name: str, tmp_path
) -> None:
    v1 = registry.register_ridge(model_name, ALL_FEATURES, alpha=1.0)
    registry.transition(model_name, v1.version, "Production")
    staged = registry.register_ridge(model_name, ALL_FEATURES, alpha=0.7)
    registry.transition(model_name, staged.version, "Staging")
    gateway = Gateway(
        tmp_path, mlflow_server.uri, [model_name], "--poll-interval", str(POLL)
    ).start()
    figures: dict[str, tuple[int, int]] = {}
    try:
        with Load(gateway.url) as load:
            # (c) The only Production version is archived.
            phase = Phase(load)
            registry.transition(model_name, v1.version, "Archived")
            state = _goes_stale(gateway, model_name, "no version in stage Production")
            assert state["version"] == int(v1.version)
            _more_requests(load)
            v3 = registry.register_ridge(model_name, ALL_FEATURES, alpha=0.3)
            registry.transition(model_name, v3.version, "Production")
            _recovers(gateway, model_name, v3.version, v3.expected())
            figures["archived"] = (len(phase.outcomes()), _count_503(phase.outcomes()))

            # An optional target emptied stops taking traffic at once (not fail static).
            pinned = {"X-Model-Target": "Staging"}
            assert gateway.post("/invocations", json=split_payload(), headers=pinned).is_success
            registry.transition(model_name, staged.version, "Archived")
            assert wait_until(
                lambda: gateway.target_state(model_name, "Staging")["status"] == "empty", SETTLE
            )
            refused = gateway.post("/invocations", json=split_payload(), headers=pinned)
            assert refused.status_code == 503
            assert _gauge(gateway, "stageserve_target_stale", model_name, "Staging") == 0

            # (b) The registered model is renamed, then renamed back.
            phase = Phase(load)
            registry.client.rename_registered_model(model_name, f"{model_name}-renamed")
            _goes_stale(gateway, model_name, "model not found in the registry")
            _more_requests(load)
            registry.client.rename_registered_model(f"{model_name}-renamed", model_name)
            _recovers(gateway, model_name, v3.version, v3.expected())  # same version again
            v4 = registry.register_ridge(model_name, ALL_FEATURES, alpha=0.05)
            registry.transition(model_name, v4.version, "Production")
            _recovers(gateway, model_name, v4.version, v4.expected())  # swapping resumed
            figures["renamed"] = (len(phase.outcomes()), _count_503(phase.outcomes()))

            # (a) The registered model is deleted, then created again from scratch.
            phase = Phase(load)
            registry.client.delete_registered_model(model_name)
            _goes_stale(gateway, model_name, "model not found in the registry")
            _more_requests(load)
            again = registry.register_ridge(model_name, ALL_FEATURES[:3], alpha=2.0)
            registry.transition(model_name, again.version, "Production")
            _recovers(gateway, model_name, again.version, again.expected())
            figures["deleted"] = (len(phase.outcomes()), _count_503(phase.outcomes()))
        print(f"\nfail static, requests / 503s per accident: {figures}")
        assert load.failures() == [], load.failures()[:5]
        assert all(total > 20 for total, _ in figures.values()), figures
        swaps = metric_samples(gateway.get("/metrics").text, "stageserve_swaps_total")
        key = (("model", model_name), ("result", "unloaded"), ("target", "Production"))
        assert swaps[key] == 0
        assert "still serving version" in gateway.log.read_text()
    finally:
        gateway.stop()


def _count_503(outcomes: list[tuple[int, str]]) -> int:
    return sum(1 for status, _ in outcomes if status == 503)


def test_on_empty_unload_takes_an_emptied_required_target_out(
    mlflow_server, registry: Registry, model_name: str, tmp_path
) -> None:
    """The operator's opt-out: --on-empty unload obeys the registry (the old behaviour)."""
    v1 = registry.register_ridge(model_name, ALL_FEATURES, alpha=1.0)
    registry.transition(model_name, v1.version, "Production")
    gateway = Gateway(
        tmp_path, mlflow_server.uri, [model_name], "--poll-interval", str(POLL),
        "--on-empty", "unload",
    ).start()  # fmt: skip
    try:
        with Load(gateway.url) as load:
            registry.transition(model_name, v1.version, "Archived")
            assert wait_until(lambda: gateway.get("/ping").status_code == 503, SETTLE)
            # Each client may have one request routed before the unload still finishing.
            started = len(load.results) + len(load.threads)
            assert wait_until(lambda: len(load.results) >= started + 50, 30)
            during = load.results[started:]
        state = gateway.target_state(model_name, "Production")
        assert state["status"] == "empty" and state["version"] is None
        assert state["stale_reason"] is None
        assert gateway.get("/ping").json()["reasons"] == [
            f"{model_name} Production: no version in stage Production"
        ]
        # Every request once the unload has settled is refused (a request or two routed
        # just before it may still have finished with 200).
        assert all(status == 503 for status, _ in during[-40:]), during
        assert _gauge(gateway, "stageserve_target_stale", model_name) == 0
        print(
            f"\n--on-empty unload: {_count_503(during)} of {len(during)} requests after "
            "the unload answered 503"
        )
    finally:
        gateway.stop()


def test_never_loaded_required_target_emptied_stays_unready_with_the_reason(
    mlflow_server, registry: Registry, model_name: str, tmp_path
) -> None:
    """Fail static has nothing to keep when nothing was loaded."""
    v1 = registry.register_ridge(model_name, ALL_FEATURES, alpha=1.0)
    registry.transition(model_name, v1.version, "Staging")
    gateway = Gateway(tmp_path, mlflow_server.uri, [model_name], "--poll-interval", str(POLL))
    gateway.start(wait_ready=False)
    try:
        assert wait_until(
            lambda: gateway.target_state(model_name, "Staging")["status"] == "ready", 60
        )
        registry.client.delete_registered_model(model_name)
        assert wait_until(
            lambda: gateway.target_state(model_name, "Staging")["status"] == "empty", SETTLE
        )
        production = gateway.target_state(model_name, "Production")
        assert production["status"] == "empty"
        ping = gateway.get("/ping")
        assert ping.status_code == 503
        assert ping.json()["reasons"] == [
            f"{model_name} Production: model not found in the registry"
        ]
    finally:
        gateway.stop()
