"""The order in which a gateway takes one registry read: the traffic policy it brings
is in force before the pool takes its targets.

A stage promotion writes the policy ``{Production: 100}`` first, then the transition
that empties Staging (service/rollouts/registry_effects.py). A gateway whose poll sees
both at once must not empty Staging while the old policy still sends it all the
traffic: the pool's apply runs the unload's observers (a full GC among them, 0.6 s on
a loaded worker), and every request in between would fail (503), as the fleet rollout
test saw before this order was fixed."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from registry_watcher.state import DesiredState, ModelState, VersionRef, diff_states
from registry_watcher.targets import parse_target
from registry_watcher.traffic_policy import POLICY_TAG, parse_policy
from service.config import Settings
from service.gateway import Gateway

MODEL = "wired"
PROMOTED = '{"weights":{"Production":100},"sticky":false}'
LAST_STEP = '{"weights":{"Production":0,"Staging":100},"sticky":false}'


def desired(staging: int | None, policy: str) -> DesiredState:
    targets = {
        parse_target("Production"): VersionRef(MODEL, 2 if staging is None else 1),
        parse_target("Staging"): None if staging is None else VersionRef(MODEL, staging),
    }
    return DesiredState({MODEL: ModelState(MODEL, True, targets, {POLICY_TAG: policy})})


def test_the_policy_read_with_a_target_change_is_in_force_before_the_pool_applies_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings.from_env(
        {"STAGESERVE_MODELS": MODEL, "STAGESERVE_TARGETS": "Production,Staging"}
    )
    nothing = cast(Any, SimpleNamespace())  # the registry is never read, nothing loaded
    gw = Gateway(settings, registry=nothing, loader=nothing)
    last_step = desired(2, LAST_STEP)
    gw._on_registry(last_step, diff_states(DesiredState(), last_step))
    assert gw.policies.policy(MODEL).to_json() == parse_policy(LAST_STEP).to_json()

    in_force: list[str] = []
    apply = gw.pool.apply

    def pool_apply(state: DesiredState) -> None:
        in_force.append(gw.policies.policy(MODEL).to_json())
        apply(state)

    monkeypatch.setattr(gw.pool, "apply", pool_apply)
    promoted = desired(None, PROMOTED)
    gw._on_registry(promoted, diff_states(last_step, promoted))
    assert in_force == [parse_policy(PROMOTED).to_json()]
