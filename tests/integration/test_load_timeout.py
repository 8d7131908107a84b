"""A load has a deadline (issue 9, item 10): a version whose load hangs is abandoned after
STAGESERVE_LOAD_TIMEOUT and counted as a `load_timeout` failure, while another model's
change is served promptly; the old version serves throughout; the abandoned load, when
it finally ends, is thrown away with its folder, and the retry serves the version."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.harness import (
    ALL_FEATURES,
    Gateway,
    Registry,
    metric_samples,
    split_payload,
    wait_until,
)

pytestmark = pytest.mark.integration

POLL = 0.5
LOAD_TIMEOUT = 20.0

# Hangs in load_context until a file exists, but only inside the gateway (MLflow may load
# the model in the test process while logging it).
HANGING_MODEL = """
import os
import time

import mlflow
from mlflow.pyfunc import PythonModel

RELEASE = {release!r}


class Hanging(PythonModel):
    def load_context(self, context):
        while "STAGESERVE_MODELS" in os.environ and not os.path.exists(RELEASE):
            time.sleep(0.05)

    def predict(self, context, model_input, params=None):
        return (model_input["age"] * 0 + 42.0).to_numpy()


mlflow.models.set_model(Hanging())
"""


def _version(gateway: Gateway, model: str) -> str:
    r = gateway.post(f"/models/{model}/invocations", json=split_payload())
    assert r.status_code == 200, r.text
    return r.headers["X-Model-Version"]


def _timeouts(gateway: Gateway, *models: str) -> tuple[float, ...]:
    swaps = metric_samples(gateway.get("/metrics").text, "stageserve_swaps_total")
    return tuple(
        swaps[(("model", m), ("result", "load_timeout"), ("target", "Production"))] for m in models
    )


@pytest.mark.timeout(600)
def test_a_hung_load_times_out_without_holding_up_another_model(
    mlflow_server, registry: Registry, tmp_path: Path
) -> None:
    slow, fast = f"{tmp_path.name[-8:]}-slow", f"{tmp_path.name[-8:]}-fast"
    slow1 = registry.register_ridge(slow, ALL_FEATURES, alpha=1.0)
    registry.transition(slow, slow1.version, "Production")
    fast1 = registry.register_ridge(fast, ALL_FEATURES, alpha=1.0)
    registry.transition(fast, fast1.version, "Production")
    fast2 = registry.register_ridge(fast, ALL_FEATURES, alpha=0.1)
    release = tmp_path / "release-the-load"
    hanging = registry.register_from_code(
        slow, HANGING_MODEL.format(release=str(release)), tmp_path
    )
    gateway = Gateway(
        tmp_path, mlflow_server.uri, [slow, fast], "--poll-interval", str(POLL),
        "--target", "Production",
        env={"STAGESERVE_LOAD_TIMEOUT": str(LOAD_TIMEOUT)},
    ).start()  # fmt: skip
    try:
        # (On a busy machine the very first loads, importing scikit-learn cold, can
        # outlive the deadline too: counts below are relative to this point.)
        before = _timeouts(gateway, slow, fast)
        registry.transition(slow, hanging, "Production")
        assert wait_until(
            lambda: gateway.target_state(slow, "Production")["status"] == "loading", 30
        )
        load_started = time.monotonic()

        # Another model's promotion is served while the hung load holds its thread.
        registry.transition(fast, fast2.version, "Production")
        promoted = time.monotonic()
        assert wait_until(lambda: _version(gateway, fast) == fast2.version, 30)
        took = time.monotonic() - promoted
        assert gateway.target_state(slow, "Production")["status"] == "loading"
        fast_load = gateway.target_state(fast, "Production")["load_duration_s"]
        print(f"\nother model served {took:.2f}s after its transition (load {fast_load:.2f}s)")
        assert took <= 2 * POLL + fast_load + 2.0
        assert _version(gateway, slow) == slow1.version  # the old version serves

        # Past the deadline: a load_timeout failure, the old version still serving.
        assert wait_until(
            lambda: gateway.target_state(slow, "Production")["status"] == "failed",
            LOAD_TIMEOUT + 30,
        ), gateway.log_tail()
        timed_out_after = time.monotonic() - load_started
        failed = gateway.target_state(slow, "Production")
        assert failed["last_error_stage"] == "load_timeout"
        assert f"did not finish within {LOAD_TIMEOUT:g}s" in failed["last_error"]
        assert failed["failed_attempts"] == 1
        assert failed["version"] == int(slow1.version)
        assert failed["registry_version"] == int(hanging)
        assert timed_out_after >= LOAD_TIMEOUT - 1
        assert gateway.get("/ping").status_code == 200
        assert _version(gateway, slow) == slow1.version
        after = _timeouts(gateway, slow, fast)
        assert (after[0] - before[0], after[1] - before[1]) == (1, 0)

        # The hung load ends: it is discarded (its folder removed), then the retry loads
        # the version again and serves it.
        release.touch()
        assert wait_until(lambda: _version(gateway, slow) == hanging, 60), gateway.log_tail()
        assert "an abandoned load ended" in gateway.log.read_text()
        model_dir = tmp_path / f"models-{gateway.port}"  # one folder per worker inside
        pattern = f"worker-*/{slow}-v{hanging}-*"
        assert wait_until(lambda: len(list(model_dir.glob(pattern))) == 1, 30), sorted(
            str(p.relative_to(model_dir)) for p in model_dir.glob("*/*")
        )
        state = gateway.target_state(slow, "Production")
        assert state["status"] == "ready" and state["last_error"] is None
    finally:
        release.touch()
        gateway.stop()
