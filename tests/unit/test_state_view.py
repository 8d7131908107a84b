"""The state view: what /ping and /admin/models show, and their JSON layout (key order
included: the answers are compared byte for byte by clients and tests)."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from registry_watcher import redact
from registry_watcher.state import VersionRef
from registry_watcher.targets import Target, parse_target
from registry_watcher.traffic_policy import default_policy
from registry_watcher.watcher import WatcherStatus
from service.lifecycle.pool import Failure
from service.ops.state_view import StateView, health_json, iso, state_json, traffic_json
from service.traffic.control import TrafficView
from service.traffic.policy_book import DEFAULT, PolicyRecord

PROD = parse_target("Production")
STAGING = parse_target("Staging")
T0 = 1_800_000_000.0


@dataclass
class Loaded:
    ref: VersionRef
    loaded_at: float = T0
    load_duration_s: float = 1.23456
    smoke_tested: bool = True


@dataclass
class Slot:
    model: str
    target: Target
    required: bool
    current: Loaded | None
    desired: VersionRef | None
    note: str | None = None
    stale_reason: str | None = None

    def status(self, failure: Any, loading: Collection[VersionRef] = ()) -> str:
        return "ready" if self.current else ("failed" if failure else "pending")


class Pool:
    loading: frozenset[VersionRef] = frozenset()

    def __init__(self, slots: list[Slot], failures: dict[VersionRef, Failure]) -> None:
        self._slots = slots
        self._failures = failures

    def slots(self) -> list[Slot]:
        return self._slots

    def failure(self, ref: VersionRef | None) -> Failure | None:
        return self._failures.get(ref) if ref else None


class Readiness:
    def __init__(self, ready: bool, reasons: list[str]) -> None:
        self.ready, self.reasons, self.asked = ready, reasons, 0

    def is_ready(self) -> bool:
        return self.ready

    def unready_reasons(self) -> list[str]:
        self.asked += 1
        return self.reasons


def traffic(model: str) -> TrafficView:
    record = PolicyRecord(default_policy(PROD), DEFAULT, None, T0)
    return TrafficView(model, record, ((PROD, 1.0), (STAGING, 0.0)))


V3 = VersionRef("m", 3, "s3://user:pw@bucket/m/3", "run3")
V4 = VersionRef("m", 4, "s3://bucket/m/4", "run4")


def view(ready: bool = True, reasons: list[str] | None = None) -> tuple[StateView, Readiness]:
    pool = Pool(
        [Slot("m", PROD, True, Loaded(V3), V3), Slot("m", STAGING, False, None, V4)],
        {V4: Failure(2, "GET s3://bucket/m/4 failed", "load", T0, retry_at=0.0)},
    )
    readiness = Readiness(ready, reasons or [])
    status = WatcherStatus("http://h:5000", 10.0, polls=5, last_success_at=T0)
    return StateView(pool, traffic, readiness, lambda: status, T0), readiness


def test_health_asks_for_reasons_only_when_not_ready() -> None:
    shown, readiness = view()
    assert health_json(shown.health()) == {"status": "ready"}
    assert readiness.asked == 0
    shown, _ = view(ready=False, reasons=["m Production: loading"])
    assert health_json(shown.health()) == {
        "status": "not_ready",
        "reasons": ["m Production: loading"],
    }


def test_the_traffic_view_layout() -> None:
    assert json.dumps(traffic_json(traffic("m"))) == json.dumps(
        {
            "model": "m",
            "tag": "stageserve.traffic",
            "policy": default_policy(PROD).to_dict(),
            "source": "default",
            "updated_at": "2027-01-15T08:00:00Z",
            "error": None,
            "effective_shares": {"Production": 1.0, "Staging": 0.0},
        }
    )


def test_the_admin_models_layout() -> None:
    redact.configure(["pw"])
    try:
        shown = state_json(view()[0].state())
    finally:
        redact.configure(())
    assert list(shown) == ["worker", "ready", "unready_reasons", "models", "watcher"]
    assert shown["worker"]["started_at"] == iso(T0)
    assert shown["ready"] is True and shown["unready_reasons"] == []
    (model,) = shown["models"]
    assert list(model) == ["name", "targets", "traffic"]
    prod, staging = model["targets"]
    assert prod == {
        "target": "Production",
        "required": True,
        "status": "ready",
        "version": 3,
        "run_id": "run3",
        "source": prod["source"],
        "loaded_at": "2027-01-15T08:00:00Z",
        "load_duration_s": 1.235,
        "smoke_tested": True,
        "registry_version": 3,
        "registry_note": None,
        "stale_reason": None,
        "last_error": None,
        "last_error_stage": None,
        "last_error_at": None,
        "failed_attempts": 0,
    }
    assert list(prod) == list(staging)
    assert "pw" not in prod["source"]  # the whole tree is redacted
    assert (staging["status"], staging["version"], staging["failed_attempts"]) == (
        "failed",
        None,
        2,
    )
    assert staging["last_error_at"] == "2027-01-15T08:00:00Z"
    assert shown["watcher"]["polls"] == 5
    assert shown["watcher"]["last_success_at"] == "2027-01-15T08:00:00Z"
    assert shown["watcher"]["last_attempt_at"] is None


def test_the_state_is_a_snapshot_of_the_watchers_status() -> None:
    shown, _ = view()
    state = shown.state()
    state_again = shown.state()
    assert state.watcher is not state_again.watcher
