"""Starting, watching, approving and aborting a rollout with `stageserve rollout`, against
one gateway (admin token set, `--controller off`) and the session's mlflow server. No
controller moves the rollouts here (that is test_rollout_controller.py's): to reach
awaiting_approval the test writes the state with the pure API
(service/rollouts/progression.py through RolloutStore), as a controller would. A gateway
without a token (403) and the races between writers: tests/unit/test_rollout_api.py."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from registry_watcher.reader import MAX_TIMEOUT_S
from service.rollouts.gates import GateVerdict, Outcome
from service.rollouts.progression import next_move
from service.rollouts.rollout_plan import Phase, Rollout
from service.rollouts.rollout_store import RegistryModelTags, RolloutStore, Written
from service.rollouts.rollout_tag import ROLLOUT_TAG, decode_rollout
from tests.integration.harness import ALL_FEATURES, Gateway, Registry, run_cli

pytestmark = pytest.mark.integration

TOKEN = "rollout-admin-token"


@dataclass
class Setup:
    registry: Registry
    gateway: Gateway
    name: str  # Production v1, Staging v2 then v3 (the latest in Staging)


@pytest.fixture(scope="module")
def setup(mlflow_server, registry, tmp_path_factory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("rollout")
    name = "rollout-model"
    first = registry.register_ridge(name, ALL_FEATURES[:4], alpha=1.0)
    registry.transition(name, first.version, "Production")
    for alpha in (0.3, 0.2):
        candidate = registry.register_ridge(name, ALL_FEATURES, alpha=alpha)
        registry.transition(name, candidate.version, "Staging")
    gateway = Gateway(
        root, mlflow_server.uri, [name], "--poll-interval", "1", "--controller", "off",
        env={"STAGESERVE_ADMIN_TOKEN": TOKEN},
    )  # fmt: skip
    gateway.start()
    try:
        yield Setup(registry, gateway, name)
    finally:
        gateway.stop()


def rollout_cli(setup: Setup, *args: str, token: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAGESERVE_ADMIN_TOKEN")}
    if token:
        env["STAGESERVE_ADMIN_TOKEN"] = TOKEN
    env["STAGESERVE_URL"] = setup.gateway.url
    return run_cli("rollout", *args, env=env)


def stored(setup: Setup, name: str) -> Rollout:
    """The rollout as a plain MLflow client reads it from the registry."""
    tags = setup.registry.client.get_registered_model(name).tags
    return decode_rollout(tags[ROLLOUT_TAG])


def test_start_refuse_show_approve_and_abort_a_rollout(setup: Setup) -> None:
    name, url = setup.name, f"{setup.gateway.url}/admin/models/{setup.name}/rollout"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    started = rollout_cli(
        setup, "start", name, "--candidate", "Staging", "--steps", "50,100",
        "--min-step-seconds", "0", "--require-approval", "--by", "ana",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    assert "started: Staging v3 against Production" in started.stderr
    rollout = stored(setup, name)
    assert (rollout.plan.candidate_version, rollout.plan.steps) == (3, (50.0, 100.0))
    assert (rollout.state.phase, rollout.state.history[0].by) == (Phase.STEP, "ana")

    again = httpx.post(url, json={"candidate": "Staging"}, headers=auth)
    assert again.status_code == 409 and "live rollout" in again.json()["message"]
    assert stored(setup, name).plan.id == rollout.plan.id

    status = rollout_cli(setup, "status", name, token=False)
    assert status.returncode == 0, status.stderr
    assert f"{name}: rollout {rollout.plan.id} (live), step 1 of 2 (50 %)" in status.stdout
    assert "Staging v3 against Production" in status.stdout
    assert "policy     Production 50 %, Staging 50 %" in status.stdout

    denied = rollout_cli(setup, "approve", name, token=False)
    assert denied.returncode == 1
    assert "HTTP 401" in denied.stderr and "STAGESERVE_ADMIN_TOKEN" in denied.stderr
    early = httpx.post(f"{url}/approve", json={"by": "ana"}, headers=auth)
    assert early.status_code == 409 and "not awaiting approval" in early.json()["message"]

    # What a controller does when every step passes: the keyed moves, written.
    store = RolloutStore(RegistryModelTags(setup.registry.uri, MAX_TIMEOUT_S))
    state = rollout.state
    while state.phase is Phase.STEP:
        passed = GateVerdict(Outcome.PASSED, "every gate passed")
        move = next_move(rollout.plan, state, passed, state.step_started_at + 1, "controller@test")
        assert store.write(name, move) is Written.WRITTEN
        state = move.state
    assert state.phase is Phase.AWAITING_APPROVAL

    approved = rollout_cli(setup, "approve", name, "--by", "ana")
    assert approved.returncode == 0, approved.stderr
    assert "approved by ana" in approved.stderr
    after = stored(setup, name)
    assert after.state.approval is not None and after.state.approval.by == "ana"
    assert after.state.history[-1].move.value == "approve"

    aborted = rollout_cli(setup, "abort", name, "--why", "p99 looks odd", "--by", "bo")
    assert aborted.returncode == 0, aborted.stderr
    assert "aborted: all traffic back to Production" in aborted.stderr
    last = stored(setup, name).state.history[-1]
    assert (last.move.value, last.by, last.reason) == (
        "abort",
        "bo",
        "aborted by bo: p99 looks odd",
    )
    shown = httpx.get(url).json()
    assert (shown["live"], shown["state"]["phase"]) == (False, "aborted")
    assert shown["policy"]["weights"] == {"Production": 100}
    over = httpx.post(f"{url}/abort", headers=auth)
    assert over.status_code == 409 and "already over" in over.json()["message"]


def test_a_bad_start_body_is_a_400_naming_the_field(setup: Setup) -> None:
    url = f"{setup.gateway.url}/admin/models/{setup.name}/rollout"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    bad = httpx.post(url, json={"candidate": "Staging", "steps": [50, 20]}, headers=auth)
    assert bad.status_code == 400
    assert bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "steps[1]: must be above the step before" in bad.json()["message"]
