"""What the gateway shows of itself: /ping and /health, /admin/models, a model's traffic.

The views are typed snapshots (dataclasses) built from the pool, traffic control, the
readiness of the workers and the watcher's status; this module is also the one place
that turns them into JSON-ready data, so the answers' layout lives here and nowhere else.
Load errors and sources quote artifact and registry URLs: the /admin/models tree is
redacted as a whole on its way out.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from registry_watcher.redact import redact_tree
from registry_watcher.state import VersionRef
from registry_watcher.targets import Target
from registry_watcher.traffic_policy import POLICY_TAG
from registry_watcher.watcher import WatcherStatus
from service.traffic.control import TrafficView


class Failure(Protocol):
    """Why a version did not load (the pool's record)."""

    @property
    def attempts(self) -> int: ...
    @property
    def error(self) -> str: ...
    @property
    def stage(self) -> str: ...
    @property
    def at(self) -> float: ...


class Current(Protocol):
    """The version a target serves, as far as the view goes."""

    @property
    def ref(self) -> VersionRef: ...
    @property
    def loaded_at(self) -> float: ...
    @property
    def load_duration_s(self) -> float: ...
    @property
    def smoke_tested(self) -> bool: ...


class Slot(Protocol):
    """One target of one model in the pool."""

    @property
    def model(self) -> str: ...
    @property
    def target(self) -> Target: ...
    @property
    def required(self) -> bool: ...
    @property
    def current(self) -> Current | None: ...
    @property
    def desired(self) -> VersionRef | None: ...
    @property
    def note(self) -> str | None: ...
    @property
    def stale_reason(self) -> str | None: ...

    # The failure is the pool's own record, as its failure() gave it.
    def status(self, failure: Any, loading: Collection[VersionRef] = ()) -> str: ...


class PoolState(Protocol):
    """The pool, as far as the view goes."""

    def slots(self) -> Iterable[Slot]: ...

    def failure(self, ref: VersionRef | None) -> Failure | None: ...

    @property
    def loading(self) -> frozenset[VersionRef]: ...


class Readiness(Protocol):
    def is_ready(self) -> bool: ...

    def unready_reasons(self) -> list[str]: ...


@dataclass(frozen=True)
class Health:
    """What /ping and /health answer: 200 when ready, 503 with the reasons otherwise."""

    ready: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class TargetState:
    """One target of one model: what it serves, what the registry says, what failed."""

    target: str
    required: bool
    status: str
    current: Current | None
    registry_version: int | None
    registry_note: str | None
    stale_reason: str | None
    failure: Failure | None


@dataclass(frozen=True)
class ModelState:
    name: str
    targets: tuple[TargetState, ...]
    traffic: TrafficView


@dataclass(frozen=True)
class GatewayState:
    """What /admin/models shows: per model, per target, what serves and why."""

    pid: int
    started_at: float
    health: Health
    models: tuple[ModelState, ...]
    watcher: WatcherStatus


class StateView:
    def __init__(
        self,
        pool: PoolState,
        traffic: Callable[[str], TrafficView],
        readiness: Readiness,
        watcher: Callable[[], WatcherStatus],
        started_at: float,
    ) -> None:
        self._pool = pool
        self._traffic = traffic
        self._readiness = readiness
        self._watcher = watcher
        self.started_at = started_at

    def health(self) -> Health:
        """What /ping answers; the reasons are only looked for when not ready (a probe
        of a ready gateway reads the readiness board once)."""
        if self._readiness.is_ready():
            return Health(True, ())
        return Health(False, tuple(self._readiness.unready_reasons()))

    def state(self) -> GatewayState:
        loading = self._pool.loading
        targets: dict[str, list[TargetState]] = {}
        for slot in self._pool.slots():
            failure = self._pool.failure(slot.desired)
            targets.setdefault(slot.model, []).append(
                TargetState(
                    target=slot.target.text,
                    required=slot.required,
                    status=slot.status(failure, loading),
                    current=slot.current,
                    registry_version=slot.desired.version if slot.desired else None,
                    registry_note=slot.note,
                    stale_reason=slot.stale_reason,
                    failure=failure,
                )
            )
        models = tuple(ModelState(m, tuple(ts), self._traffic(m)) for m, ts in targets.items())
        status = self._watcher()
        snapshot = WatcherStatus(**vars(status))  # the watcher thread keeps writing its own
        # /admin/models shows the reasons whether or not the gateway is ready.
        health = Health(self._readiness.is_ready(), tuple(self._readiness.unready_reasons()))
        return GatewayState(os.getpid(), self.started_at, health, models, snapshot)


# --- JSON: the one place the views' layout is written --------------------------------


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def health_json(health: Health) -> dict[str, Any]:
    if health.ready:
        return {"status": "ready"}
    return {"status": "not_ready", "reasons": list(health.reasons)}


def traffic_json(view: TrafficView) -> dict[str, Any]:
    record = view.record
    return {
        "model": view.model,
        "tag": POLICY_TAG,
        "policy": record.policy.to_dict(),
        "source": record.source,
        "updated_at": iso(record.updated_at),
        "error": record.error,
        "effective_shares": {t.text: round(share, 6) for t, share in view.shares},
    }


def target_json(state: TargetState) -> dict[str, Any]:
    current, failure = state.current, state.failure
    return {
        "target": state.target,
        "required": state.required,
        "status": state.status,
        "version": current.ref.version if current else None,
        "run_id": current.ref.run_id if current else None,
        "source": current.ref.source if current else None,
        "loaded_at": iso(current.loaded_at) if current else None,
        "load_duration_s": round(current.load_duration_s, 3) if current else None,
        "smoke_tested": current.smoke_tested if current else None,
        "registry_version": state.registry_version,
        "registry_note": state.registry_note,
        "stale_reason": state.stale_reason,
        "last_error": failure.error if failure else None,
        "last_error_stage": failure.stage if failure else None,
        "last_error_at": iso(failure.at) if failure else None,
        "failed_attempts": failure.attempts if failure else 0,
    }


def watcher_json(status: WatcherStatus) -> dict[str, Any]:
    shown: dict[str, Any] = status.as_dict()
    shown["last_success_at"] = iso(status.last_success_at)
    shown["last_attempt_at"] = iso(status.last_attempt_at)
    return shown


def state_json(state: GatewayState) -> dict[str, Any]:
    view = {
        "worker": {"pid": state.pid, "started_at": iso(state.started_at)},
        "ready": state.health.ready,
        "unready_reasons": list(state.health.reasons),
        "models": [
            {
                "name": model.name,
                "targets": [target_json(t) for t in model.targets],
                "traffic": traffic_json(model.traffic),
            }
            for model in state.models
        ],
        "watcher": watcher_json(state.watcher),
    }
    # Load errors and sources quote artifact and registry URLs: no credentials out.
    shown = redact_tree(view)
    assert isinstance(shown, dict)  # a dict redacted is a dict
    return shown
