"""What must not break serving: a registry outage, bad versions, a model that raises,
stages emptied, aliases moved, several models and several workers."""

from __future__ import annotations

import threading
import time
from datetime import datetime

import httpx
import pytest

from service.cli.version import installed_version
from service.lifecycle.validation_tags import AT_TAG, ERROR_TAG, GATEWAY_TAG, RESULT_TAG
from tests.integration.faulty_servers import Cable, FlakyProxy
from tests.integration.harness import (
    ALL_FEATURES,
    ROW,
    Gateway,
    Load,
    Registry,
    metric_samples,
    split_payload,
    wait_until,
)

pytestmark = pytest.mark.integration

POLL = 0.5
WRITES = "stageserve_validation_writes_total"


def _answers(gateway: Gateway, version: str, **headers: str) -> bool:
    r = gateway.post("/invocations", json=split_payload(), headers=headers)
    return r.status_code == 200 and r.headers["X-Model-Version"] == version


def test_registry_outage_keeps_serving(mlflow_server, registry, tmp_path, model_name) -> None:
    """The gateway reaches the session's registry through a Cable, cut for the outage
    (connections refused and dropped, as from a stopped server)."""
    v1 = registry.register_ridge(model_name, ALL_FEATURES, alpha=1.0)
    registry.transition(model_name, v1.version, "Production")
    cable = Cable(mlflow_server.uri)
    gateway = Gateway(
        tmp_path, cable.uri, [model_name], "--poll-interval", str(POLL),
        env={"STAGESERVE_MAX_BACKOFF": "2"},
    )  # fmt: skip
    try:
        gateway.start()  # if it cannot, the finally still cuts the cable
        with Load(gateway.url) as load:
            cable.cut()
            before_outage = len(load.results)
            assert wait_until(lambda: gateway.state()["watcher"]["consecutive_failures"] >= 3, 30)
            during = gateway.state()
            metrics = gateway.get("/metrics").text
            served_during_outage = len(load.results) - before_outage
            cable.plug()
            assert wait_until(lambda: gateway.state()["watcher"]["reachable"] is True, 30)
            v2 = registry.register_ridge(model_name, ALL_FEATURES, alpha=0.1)
            registry.transition(model_name, v2.version, "Production")
            assert wait_until(lambda: _answers(gateway, v2.version), 30), gateway.log_tail()
        assert served_during_outage > 0
        assert load.failures() == []
        assert {v for _, v in load.results} <= {v1.version, v2.version}
        assert during["ready"] is True
        assert during["watcher"]["reachable"] is False
        assert during["watcher"]["last_error"]
        assert gateway.target_state(model_name, "Production")["version"] == int(v2.version)
        assert "stageserve_registry_up 0.0" in metrics
        polls = metric_samples(metrics, "stageserve_registry_polls_total")
        assert polls[(("outcome", "error"),)] >= 3
    finally:
        gateway.stop()
        cable.cut()


RAISING_MODEL = """
import mlflow
from mlflow.pyfunc import PythonModel


class Raising(PythonModel):
    def predict(self, context, model_input, params=None):
        raise ValueError("this version refuses every input")


mlflow.models.set_model(Raising())
"""

PICKY_MODEL = """
import mlflow
from mlflow.pyfunc import PythonModel


class Picky(PythonModel):
    def predict(self, context, model_input, params=None):
        if (model_input["age"] < -1).any():
            raise ValueError("age below -1 is not supported")
        return (model_input["age"] * 2).to_numpy()


mlflow.models.set_model(Picky())
"""


def validation_tags(registry: Registry, model: str, version: str) -> dict[str, str]:
    tags = registry.client.get_model_version(model, version).tags
    return {key: value for key, value in tags.items() if key.startswith(RESULT_TAG)}


def _validation_writes(gateway: Gateway, result: str) -> float:
    return metric_samples(gateway.get("/metrics").text, WRITES)[(("result", result),)]


def test_bad_versions_never_take_traffic(mlflow_server, registry, model_name, tmp_path) -> None:
    """A version that cannot load or fails its smoke test never serves. With
    --write-validation each smoke test's verdict is written on its version (once, whatever
    the retries); a registry that refuses those writes (a proxy answering 503 to them)
    changes nothing for serving: the failure is counted and logged once."""
    good = registry.register_ridge(model_name, ALL_FEATURES, alpha=1.0)
    registry.transition(model_name, good.version, "Production")
    refuse = threading.Event()

    def tag_write_refused(method: str, path: str) -> bool:
        return refuse.is_set() and method == "POST" and path.endswith("/model-versions/set-tag")

    with FlakyProxy(mlflow_server.uri, tag_write_refused) as proxy:
        gateway = Gateway(
            tmp_path, proxy.uri, [model_name], "--poll-interval", str(POLL), "--write-validation",
            env={"STAGESERVE_MAX_BACKOFF": "1"},
        )  # fmt: skip
        gateway.start()
        try:
            with Load(gateway.url) as load:
                # 0. The good version passed its smoke test, and its tags say so.
                assert wait_until(
                    lambda: validation_tags(registry, model_name, good.version).get(RESULT_TAG),
                    30,
                ), gateway.log_tail()
                passed = validation_tags(registry, model_name, good.version)
                assert set(passed) == {RESULT_TAG, AT_TAG, GATEWAY_TAG}
                assert passed[RESULT_TAG] == "passed"
                assert passed[GATEWAY_TAG] == installed_version("stageserve")
                at = datetime.strptime(passed[AT_TAG], "%Y-%m-%dT%H:%M:%S%z")
                assert abs(time.time() - at.timestamp()) < 120

                # 1. An artifact that cannot load.
                broken = registry.register_ridge(model_name, ALL_FEATURES, alpha=0.3)
                (
                    registry.artifact_dir(mlflow_server, model_name, broken.version) / "MLmodel"
                ).write_text("this: is: not: an MLmodel file\n")
                registry.transition(model_name, broken.version, "Production")

                def failed_twice() -> bool:
                    state = gateway.target_state(model_name, "Production")
                    return state["status"] == "failed" and state["failed_attempts"] >= 2

                assert wait_until(failed_twice, 30), gateway.log_tail()
                failed = gateway.target_state(model_name, "Production")
                assert failed["version"] == int(good.version)
                assert failed["registry_version"] == int(broken.version)
                assert "load" in failed["last_error"]
                assert gateway.get("/ping").status_code == 200

                # 2. A version that loads but fails its own input example (retried).
                raising = registry.register_from_code(model_name, RAISING_MODEL, tmp_path)
                registry.transition(model_name, raising, "Production")

                def smoke_test_failed_thrice() -> bool:
                    state = gateway.target_state(model_name, "Production")
                    return (
                        state["registry_version"] == int(raising) and state["failed_attempts"] >= 3
                    )

                assert wait_until(smoke_test_failed_thrice, 30), gateway.log_tail()
                smoke = gateway.target_state(model_name, "Production")
                assert "smoke test" in smoke["last_error"]
                assert "refuses every input" in smoke["last_error"]
                assert smoke["version"] == int(good.version)
                metrics = gateway.get("/metrics").text
                tagged_failed = validation_tags(registry, model_name, raising)

                # 3. A good version after the bad ones is served, its tags refused.
                refuse.set()
                fixed = registry.register_ridge(model_name, ALL_FEATURES, alpha=0.2)
                registry.transition(model_name, fixed.version, "Production")
                assert wait_until(lambda: _answers(gateway, fixed.version), 30), gateway.log_tail()
                assert wait_until(lambda: _validation_writes(gateway, "failed") == 1, 30)
            assert load.failures() == []
            assert {v for _, v in load.results} == {good.version, fixed.version}
            swaps = metric_samples(metrics, "stageserve_swaps_total")
            model, target = ("model", model_name), ("target", "Production")
            assert swaps[(model, ("result", "load_failed"), target)] >= 2
            assert swaps[(model, ("result", "smoke_test_failed"), target)] >= 1
            assert gateway.target_state(model_name, "Production")["last_error"] is None
            # The verdicts written back: a failed load is no smoke test, and a failing
            # smoke test retried is written once (later attempts find it recorded).
            assert tagged_failed[RESULT_TAG] == "failed"
            assert "smoke test" in tagged_failed[ERROR_TAG]
            assert "refuses every input" in tagged_failed[ERROR_TAG]
            assert validation_tags(registry, model_name, broken.version) == {}
            assert validation_tags(registry, model_name, fixed.version) == {}
            writes = metric_samples(metrics, WRITES)
            assert writes[(("result", "written"),)] == 2
            assert writes[(("result", "skipped"),)] >= 2
            assert any(status == 503 for _, _, status in proxy.seen)
        finally:
            gateway.stop()
    log = gateway.log.read_text()
    assert log.count("not written to the registry") == 1
    assert "serving is not affected" in log


def test_model_that_raises_on_a_request(mlflow_server, registry, model_name, tmp_path) -> None:
    version = registry.register_from_code(model_name, PICKY_MODEL, tmp_path)
    registry.transition(model_name, version, "Production")
    gateway = Gateway(tmp_path, mlflow_server.uri, [model_name], "--poll-interval", str(POLL))
    gateway.start()
    try:
        bad_row = [-5.0, *ROW[1:]]
        refused = gateway.post("/invocations", json=split_payload([bad_row]))
        assert refused.status_code == 400
        assert refused.json()["error_code"] == "BAD_REQUEST"
        assert "age below -1" in refused.json()["message"]
        fine = gateway.post("/invocations", json=split_payload([ROW]))
        assert fine.status_code == 200
        assert fine.json()["predictions"] == [pytest.approx(ROW[0] * 2)]
        requests = metric_samples(gateway.get("/metrics").text, "stageserve_requests_total")
        labels = (("model", model_name), ("target", "Production"), ("version", version))
        assert requests[(*labels[:1], ("outcome", "model_error"), *labels[1:])] == 1
        assert requests[(*labels[:1], ("outcome", "success"), *labels[1:])] == 1
        # Without --write-validation no verdict is written back.
        assert validation_tags(registry, model_name, version) == {}
        assert _validation_writes(gateway, "written") == 0
    finally:
        gateway.stop()


def test_several_models_readiness_and_emptied_stage(mlflow_server, registry, tmp_path) -> None:
    first, second = f"{tmp_path.name[-8:]}-a", f"{tmp_path.name[-8:]}-b"
    a1 = registry.register_ridge(first, ALL_FEATURES[:4], alpha=1.0)
    registry.transition(first, a1.version, "Production")
    a2 = registry.register_ridge(first, ALL_FEATURES, alpha=0.5)
    registry.transition(first, a2.version, "Staging")
    b1 = registry.register_ridge(second, ALL_FEATURES, alpha=0.2)  # nothing in Production yet
    registry.transition(second, b1.version, "Staging")
    gateway = Gateway(tmp_path, mlflow_server.uri, [first, second], "--poll-interval", str(POLL))
    gateway.start(wait_ready=False)
    try:
        # Not ready while a required target is empty, and says why.
        assert wait_until(lambda: gateway.state()["watcher"]["polls"] >= 1, 30)
        assert wait_until(
            lambda: gateway.target_state(first, "Production")["status"] == "ready", 30
        )
        ping = gateway.get("/ping")
        assert ping.status_code == 503
        assert any(second in reason for reason in ping.json()["reasons"])
        assert gateway.get("/readyz").status_code == 503
        registry.transition(second, b1.version, "Production")
        assert wait_until(lambda: gateway.get("/ping").status_code == 200, 30)

        ambiguous = gateway.post("/invocations", json=split_payload())
        assert ambiguous.status_code == 400
        assert f"/models/{first}/invocations" in ambiguous.json()["message"]
        assert f"/models/{second}/invocations" in ambiguous.json()["message"]
        a = gateway.post(f"/models/{first}/invocations", json=split_payload())
        b = gateway.post(f"/models/{second}/invocations", json=split_payload())
        assert (a.headers["X-Model-Name"], a.headers["X-Model-Version"]) == (first, a1.version)
        assert (b.headers["X-Model-Name"], b.headers["X-Model-Version"]) == (second, b1.version)
        assert a.json()["predictions"][0] == pytest.approx(a1.expected())
        assert b.json()["predictions"][0] == pytest.approx(b1.expected())

        staging = {"X-Model-Target": "Staging"}
        assert (
            gateway.post(
                f"/models/{first}/invocations", json=split_payload(), headers=staging
            ).status_code
            == 200
        )
        registry.transition(first, a2.version, "Archived")
        assert wait_until(
            lambda: (
                gateway.post(
                    f"/models/{first}/invocations", json=split_payload(), headers=staging
                ).status_code
                == 503
            ),
            4 * POLL + 5,
        )
        emptied = gateway.target_state(first, "Staging")
        assert emptied["status"] == "empty" and emptied["version"] is None
        assert gateway.get("/ping").status_code == 200  # Staging is optional
        metrics = gateway.get("/metrics").text
        loaded = metric_samples(metrics, "stageserve_loaded_version")
        assert loaded[(("model", first), ("target", "Staging"))] == 0
        assert loaded[(("model", first), ("target", "Production"))] == int(a1.version)
        swaps = metric_samples(metrics, "stageserve_swaps_total")
        assert swaps[(("model", first), ("result", "unloaded"), ("target", "Staging"))] == 1
    finally:
        gateway.stop()


def test_alias_and_pinned_version_targets(mlflow_server, registry, model_name, tmp_path) -> None:
    v1 = registry.register_ridge(model_name, ALL_FEATURES, alpha=1.0)
    v2 = registry.register_ridge(model_name, ALL_FEATURES, alpha=0.1)
    registry.set_alias(model_name, "champion", v1.version)
    gateway = Gateway(
        tmp_path, mlflow_server.uri, [model_name], "--poll-interval", str(POLL),
        "--target", "@champion", "--target", v2.version,
    ).start()  # fmt: skip
    try:
        default = gateway.post("/invocations", json=split_payload())
        assert default.headers["X-Model-Target"] == "@champion"
        assert default.headers["X-Model-Version"] == v1.version
        pinned = gateway.post(
            "/invocations", json=split_payload(), headers={"X-Model-Target": v2.version}
        )
        assert pinned.headers["X-Model-Target"] == v2.version
        assert pinned.json()["predictions"][0] == pytest.approx(v2.expected())

        moved_at = time.monotonic()
        registry.set_alias(model_name, "champion", v2.version)  # no timestamp changes: content diff
        assert wait_until(lambda: _answers(gateway, v2.version), 2 * POLL + 5)
        assert time.monotonic() - moved_at < 2 * POLL + 5
        champion = gateway.target_state(model_name, "@champion")
        assert champion["version"] == int(v2.version) and champion["status"] == "ready"

        # Fail static: the required alias deleted, its version keeps serving, flagged.
        registry.client.delete_registered_model_alias(model_name, "champion")
        assert wait_until(
            lambda: gateway.target_state(model_name, "@champion")["status"] == "stale",
            2 * POLL + 5,
        )
        stale = gateway.target_state(model_name, "@champion")
        assert stale["stale_reason"] == "alias @champion is not set"
        assert stale["version"] == int(v2.version)
        assert gateway.get("/ping").status_code == 200
        assert _answers(gateway, v2.version)
    finally:
        gateway.stop()


def test_two_workers(mlflow_server, registry, model_name, tmp_path) -> None:
    v1 = registry.register_ridge(model_name, ALL_FEATURES, alpha=1.0)
    registry.transition(model_name, v1.version, "Production")
    gateway = Gateway(
        tmp_path, mlflow_server.uri, [model_name], "--poll-interval", str(POLL), "--workers", "2"
    ).start()
    try:
        pids: set[int] = set()
        assert wait_until(
            lambda: (
                pids.add(httpx.get(gateway.url + "/admin/models").json()["worker"]["pid"])
                or len(pids) == 2
            ),
            60,
        ), "requests on new connections never reached a second worker"
        # Both workers must be ready before counting: readiness is per worker.
        assert wait_until(
            lambda: (
                metric_samples(gateway.get("/metrics").text, "stageserve_target_ready")[
                    (("model", model_name), ("target", "Production"))
                ]
                == 1
            ),
            60,
        )
        sent = 120
        for _ in range(sent):  # a new connection each time spreads them over workers
            assert httpx.post(gateway.url + "/invocations", json=split_payload()).status_code == 200
        v2 = registry.register_ridge(model_name, ALL_FEATURES, alpha=0.1)
        registry.transition(model_name, v2.version, "Production")
        assert wait_until(lambda: _answers(gateway, v2.version), 30)
        # Every worker swaps: within two polls of the first v2 answer, no new connection
        # gets v1 any more. The bound is on when the last v1 answer came, not on how long
        # 40 requests take (a loaded machine makes those slow, not the swap).
        first_v2 = last_v1 = time.monotonic()
        streak, deadline = 0, first_v2 + 60
        while streak < 40:
            assert time.monotonic() < deadline, "a worker kept serving the old version"
            r = httpx.post(gateway.url + "/invocations", json=split_payload())
            if r.headers["X-Model-Version"] == v2.version:
                streak += 1
            else:
                streak, last_v1 = 0, time.monotonic()
        assert last_v1 - first_v2 < 2 * POLL + 4, "a worker kept serving the old version"
        metrics = gateway.get("/metrics").text
        requests = metric_samples(metrics, "stageserve_requests_total")
        total = sum(
            v
            for k, v in requests.items()
            if ("outcome", "success") in k and ("model", model_name) in k
        )
        assert total >= sent + 40 + 1
        v1_count = requests[
            (
                ("model", model_name),
                ("outcome", "success"),
                ("target", "Production"),
                ("version", v1.version),
            )
        ]
        assert v1_count >= sent
        loaded = metric_samples(metrics, "stageserve_loaded_version")
        assert loaded[(("model", model_name), ("target", "Production"))] == int(v2.version)
    finally:
        gateway.stop()
