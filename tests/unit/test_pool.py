"""service.lifecycle.pool.ModelPool, driven synchronously through apply() and reconcile_once().

The loader is a callable written here: it builds real LoadedVersion objects around a
tiny model and can be told to fail (LoadError or any exception) for chosen versions.
"""

from __future__ import annotations

import gc
import json
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from registry_watcher.state import DesiredState, ModelState, VersionRef
from registry_watcher.targets import Target, parse_target
from service.inference.loaded_version import LoadedVersion
from service.lifecycle.availability import (
    AvailabilityPolicy,
    EmptiedVerdict,
    FailStatic,
    UnloadEmptied,
)
from service.lifecycle.backoff import ExponentialBackoff
from service.lifecycle.load_order import W
from service.lifecycle.pool import Failure, ModelPool, PoolObserver, Slot
from service.lifecycle.servable import LoadError
from tests.integration.harness import wait_until

PROD = parse_target("Production")
STAGING = parse_target("Staging")
CHAMP = parse_target("@champion")


def ref(n: int, model: str = "m") -> VersionRef:
    return VersionRef(model, n, f"s3://bucket/{model}/{n}", f"run{n}")


class VersionModel:
    """Predicts its own version number for every row."""

    def __init__(self, version: int) -> None:
        self.version = version

    def predict(self, data: Any) -> list[int]:
        return [self.version] * len(data)


class FakeLoader:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.calls: list[VersionRef] = []
        self.failures: dict[VersionRef, Exception] = {}
        self.during_load: Callable[[VersionRef], None] | None = None

    def __call__(self, r: VersionRef) -> LoadedVersion:
        self.calls.append(r)
        if self.during_load is not None:
            self.during_load(r)
        if r in self.failures:
            raise self.failures[r]
        return LoadedVersion(
            ref=r,
            model=VersionModel(r.version),
            metadata=None,
            input_schema=None,
            with_params=False,
            local_dir=str(self.tmp_path),
        )


class Events:
    def __init__(self) -> None:
        self.swaps: list[tuple[str, Target, str, float]] = []
        self.targets: list[tuple[str, Target, LoadedVersion | None]] = []
        self.stale: list[tuple[str, Target, str | None]] = []

    def observer(self) -> PoolObserver:
        return PoolObserver(
            on_swap=lambda m, t, result, secs: self.swaps.append((m, t, result, secs)),
            on_target=lambda m, t, v: self.targets.append((m, t, v)),
            on_stale=lambda m, t, reason: self.stale.append((m, t, reason)),
        )

    def results(self) -> list[tuple[str, str, str]]:
        return [(m, t.text, result) for m, t, result, _ in self.swaps]


def desired(
    models: dict[str, dict[Target, VersionRef | None]],
    notes: dict[str, dict[Target, str]] | None = None,
) -> DesiredState:
    notes = notes or {}
    return DesiredState(
        {
            name: ModelState(name, True, dict(targets), notes=notes.get(name, {}))
            for name, targets in models.items()
        }
    )


@pytest.fixture
def loader(tmp_path: Path) -> FakeLoader:
    return FakeLoader(tmp_path)


@pytest.fixture
def events() -> Events:
    return Events()


def make_pool(
    loader: FakeLoader,
    events: Events | None = None,
    targets: dict[str, tuple[Target, ...]] | None = None,
    retry_base_s: float = 30.0,
    retry_cap_s: float = 60.0,
    availability: AvailabilityPolicy | None = None,
) -> ModelPool:
    """A pool whose loads run inline, in reconcile_once: the tests drive it step by step."""
    return ModelPool(
        targets or {"m": (PROD, STAGING)},
        loader,
        required=lambda model, target: target == PROD,
        retry=ExponentialBackoff(retry_base_s, retry_cap_s),
        observer=events.observer() if events else None,
        availability=availability,
        spawn=run_inline,
    )


def run_inline(work: Callable[[], None], name: str) -> None:
    work()


def run_until_idle(pool: ModelPool[LoadedVersion], timeout: float = 60.0) -> None:
    """Reconcile until nothing is due now (with inline loads: every load done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        due = pool.reconcile_once()
        if due is None or due > 0:
            return


def slot(pool: ModelPool, target: Target, model: str = "m") -> Slot:
    (found,) = [s for s in pool.slots() if s.model == model and s.target == target]
    return found


def status(pool: ModelPool, target: Target, model: str = "m") -> str:
    s = slot(pool, target, model)
    return s.status(pool.failure(s.desired), pool.loading)


def invoke(loaded: LoadedVersion) -> Any:
    return json.loads(loaded.invoke(b'{"inputs": [1, 2]}', "application/json"))


def wait_until_retry_due(pool: ModelPool, r: VersionRef) -> None:
    failure = pool.failure(r)
    assert failure is not None
    remaining = failure.retry_at - time.monotonic()
    assert remaining < 0.1  # the tests that call this use a tiny retry base
    while time.monotonic() < failure.retry_at:
        time.sleep(max(0.0, failure.retry_at - time.monotonic()))


# --- before and at the first load ---------------------------------------------------


def test_before_the_registry_is_read(loader: FakeLoader) -> None:
    pool = make_pool(loader)
    assert pool.models() == ("m",)
    assert pool.targets("m") == (PROD, STAGING)
    assert pool.targets("other") == ()
    assert not pool.is_ready()
    assert pool.unready_reasons() == ["m Production: the registry has not been read yet"]
    assert status(pool, PROD) == "waiting_for_registry"
    assert status(pool, STAGING) == "waiting_for_registry"
    assert pool.reconcile_once() is None
    assert loader.calls == []
    assert pool.get("m", PROD) is None
    assert pool.get("unknown", PROD) is None


def test_slots_know_which_targets_are_required(loader: FakeLoader) -> None:
    pool = make_pool(loader)
    assert slot(pool, PROD).required is True
    assert slot(pool, STAGING).required is False


def test_initial_load(loader: FakeLoader, events: Events) -> None:
    pool = make_pool(loader, events)
    pool.apply(desired({"m": {PROD: ref(1), STAGING: None}}))
    assert status(pool, PROD) == "pending"
    assert status(pool, STAGING) == "empty"
    assert not pool.is_ready()
    assert pool.unready_reasons() == ["m Production: version 1 is loading"]
    assert loader.calls == []  # apply() never loads

    assert pool.reconcile_once() == 0.0
    assert loader.calls == [ref(1)]
    loaded = pool.get("m", PROD)
    assert loaded is not None
    assert loaded.ref == ref(1)
    assert pool.is_ready()
    assert pool.unready_reasons() == []
    assert status(pool, PROD) == "ready"
    assert pool.reconcile_once() is None
    assert events.results() == [("m", "Production", "success")]
    assert events.swaps[0][3] >= 0
    assert events.targets == [("m", PROD, loaded)]
    assert invoke(loaded) == {"predictions": [1, 1]}


def test_ready_only_when_the_required_target_is_loaded(loader: FakeLoader) -> None:
    pool = make_pool(loader)
    loader.failures[ref(1)] = LoadError("load", "broken artifact")
    pool.apply(desired({"m": {PROD: ref(1), STAGING: ref(2)}}))
    run_until_idle(pool)
    assert pool.get("m", STAGING) is not None
    assert pool.get("m", PROD) is None
    assert not pool.is_ready()
    assert pool.unready_reasons() == ["m Production: version 1 failed to load: broken artifact"]


def test_ready_needs_every_models_required_target(loader: FakeLoader) -> None:
    pool = make_pool(loader, targets={"a": (PROD,), "b": (PROD,)})
    pool.apply(
        desired(
            {"a": {PROD: ref(1, "a")}, "b": {PROD: None}},
            {"b": {PROD: "no version in stage Production"}},
        )
    )
    run_until_idle(pool)
    assert pool.get("a", PROD) is not None
    assert not pool.is_ready()
    assert pool.unready_reasons() == ["b Production: no version in stage Production"]
    pool.apply(desired({"a": {PROD: ref(1, "a")}, "b": {PROD: ref(4, "b")}}))
    run_until_idle(pool)
    assert pool.is_ready()


def test_not_ready_without_a_note(loader: FakeLoader) -> None:
    pool = make_pool(loader)
    pool.apply(DesiredState())
    assert pool.unready_reasons() == ["m Production: no version in the registry"]
    assert status(pool, PROD) == "empty"


def test_required_targets_load_first(loader: FakeLoader) -> None:
    pool = make_pool(loader, targets={"a": (STAGING,), "b": (PROD,)})
    pool.apply(desired({"a": {STAGING: ref(5, "a")}, "b": {PROD: ref(4, "b")}}))
    run_until_idle(pool)
    assert loader.calls == [ref(4, "b"), ref(5, "a")]


# --- swaps --------------------------------------------------------------------------


def test_swap_replaces_current_and_the_old_version_stays_usable(
    loader: FakeLoader, events: Events
) -> None:
    pool = make_pool(loader, events)
    pool.apply(desired({"m": {PROD: ref(1)}}))
    run_until_idle(pool)
    old = pool.get("m", PROD)
    assert old is not None

    pool.apply(desired({"m": {PROD: ref(2)}}))
    # Until the new one is loaded, the old one keeps serving.
    assert pool.get("m", PROD) is old
    assert pool.is_ready()
    assert status(pool, PROD) == "pending"

    run_until_idle(pool)
    new = pool.get("m", PROD)
    assert new is not None
    assert new is not old
    assert new.ref == ref(2)
    assert status(pool, PROD) == "ready"
    # A request that held the old version finishes on it, unchanged.
    assert old.ref == ref(1)
    assert invoke(old) == {"predictions": [1, 1]}
    assert invoke(new) == {"predictions": [2, 2]}
    assert events.results() == [("m", "Production", "success")] * 2
    assert [v for _, _, v in events.targets] == [old, new]


def test_rollback_to_a_previous_version_loads_it_again(loader: FakeLoader) -> None:
    pool = make_pool(loader)
    for n in (1, 2, 1):
        pool.apply(desired({"m": {PROD: ref(n)}}))
        run_until_idle(pool)
        assert pool.get("m", PROD).ref == ref(n)
    assert loader.calls == [ref(1), ref(2), ref(1)]


def test_same_state_twice_does_not_reload(loader: FakeLoader) -> None:
    pool = make_pool(loader)
    pool.apply(desired({"m": {PROD: ref(1)}}))
    run_until_idle(pool)
    pool.apply(desired({"m": {PROD: ref(1)}}))
    assert pool.reconcile_once() is None
    assert loader.calls == [ref(1)]


# --- failures and retries -----------------------------------------------------------


def test_failing_load_keeps_the_old_version(loader: FakeLoader, events: Events) -> None:
    pool = make_pool(loader, events, retry_base_s=30.0, retry_cap_s=60.0)
    pool.apply(desired({"m": {PROD: ref(1)}}))
    run_until_idle(pool)
    old = pool.get("m", PROD)

    loader.failures[ref(2)] = LoadError("load", "download failed: 403")
    pool.apply(desired({"m": {PROD: ref(2)}}))
    before = time.monotonic()
    assert pool.reconcile_once() == 0.0

    assert pool.get("m", PROD) is old
    assert pool.is_ready()
    failure = pool.failure(ref(2))
    assert isinstance(failure, Failure)
    assert failure.attempts == 1
    assert failure.stage == "load"
    assert failure.error == "download failed: 403"
    assert before + 15.0 <= failure.retry_at <= time.monotonic() + 30.0
    assert failure.at <= time.time()
    assert status(pool, PROD) == "failed"
    assert events.results()[-1] == ("m", "Production", "load_failed")
    assert len(events.targets) == 1  # no target change for a failure

    # Not retried before retry_at: the pool says how long to wait instead.
    for _ in range(3):
        delay = pool.reconcile_once()
        assert delay is not None
        assert 0 < delay <= 30.0
    run_until_idle(pool)
    assert loader.calls == [ref(1), ref(2)]
    assert pool.failure(ref(2)).attempts == 1


def test_failed_load_is_retried_after_retry_at(loader: FakeLoader, events: Events) -> None:
    pool = make_pool(loader, events, retry_base_s=0.001, retry_cap_s=0.004)
    loader.failures[ref(1)] = LoadError("load", "flaky")
    pool.apply(desired({"m": {PROD: ref(1)}}))

    assert pool.reconcile_once() == 0.0
    for attempt in (2, 3, 4):
        wait_until_retry_due(pool, ref(1))
        assert pool.reconcile_once() == 0.0
        assert pool.failure(ref(1)).attempts == attempt
        assert len(loader.calls) == attempt

    del loader.failures[ref(1)]
    wait_until_retry_due(pool, ref(1))
    assert pool.reconcile_once() == 0.0
    assert pool.failure(ref(1)) is None
    assert pool.get("m", PROD).ref == ref(1)
    assert status(pool, PROD) == "ready"
    assert events.results() == [("m", "Production", "load_failed")] * 4 + [
        ("m", "Production", "success")
    ]


def test_smoke_test_failure(loader: FakeLoader, events: Events) -> None:
    pool = make_pool(loader, events)
    loader.failures[ref(1)] = LoadError("smoke_test", "smoke test failed: bad output")
    pool.apply(desired({"m": {PROD: ref(1)}}))
    run_until_idle(pool)
    failure = pool.failure(ref(1))
    assert failure.stage == "smoke_test"
    assert failure.error == "smoke test failed: bad output"
    assert events.results() == [("m", "Production", "smoke_test_failed")]
    assert pool.unready_reasons() == [
        "m Production: version 1 failed to load: smoke test failed: bad output"
    ]


def test_unexpected_exception_from_the_loader(loader: FakeLoader, events: Events) -> None:
    pool = make_pool(loader, events)
    loader.failures[ref(1)] = MemoryError("out of memory")
    pool.apply(desired({"m": {PROD: ref(1)}}))
    assert pool.reconcile_once() == 0.0
    failure = pool.failure(ref(1))
    assert failure.stage == "load"
    assert failure.error == "MemoryError: out of memory"
    assert events.results() == [("m", "Production", "load_failed")]


def test_failure_message_is_bounded(loader: FakeLoader) -> None:
    pool = make_pool(loader)
    loader.failures[ref(1)] = LoadError("load", "e" * 50_000)
    pool.apply(desired({"m": {PROD: ref(1)}}))
    run_until_idle(pool)
    assert len(pool.failure(ref(1)).error) == 1000


def test_failure_is_forgotten_when_the_version_is_no_longer_wanted(loader: FakeLoader) -> None:
    pool = make_pool(loader)
    loader.failures[ref(2)] = LoadError("load", "nope")
    pool.apply(desired({"m": {PROD: ref(2)}}))
    run_until_idle(pool)
    assert pool.failure(ref(2)) is not None
    pool.apply(desired({"m": {PROD: ref(3)}}))
    assert pool.failure(ref(2)) is None
    assert status(pool, PROD) == "pending"
    run_until_idle(pool)
    assert pool.get("m", PROD).ref == ref(3)
    assert pool.failure(None) is None


def test_failure_is_kept_while_the_version_is_still_wanted(loader: FakeLoader) -> None:
    pool = make_pool(loader)
    loader.failures[ref(2)] = LoadError("load", "nope")
    pool.apply(desired({"m": {PROD: ref(2)}}))
    run_until_idle(pool)
    pool.apply(desired({"m": {PROD: ref(2), STAGING: ref(5)}}))
    assert pool.failure(ref(2)).attempts == 1


def test_run_until_idle_returns_when_only_retries_remain(loader: FakeLoader) -> None:
    pool = make_pool(loader, retry_base_s=30.0)
    loader.failures[ref(1)] = LoadError("load", "nope")
    pool.apply(desired({"m": {PROD: ref(1)}}))
    started = time.monotonic()
    run_until_idle(pool, timeout=10)
    assert time.monotonic() - started < 5
    assert loader.calls == [ref(1)]


# --- sharing ------------------------------------------------------------------------


def test_same_version_in_two_targets_is_loaded_once(loader: FakeLoader, events: Events) -> None:
    pool = make_pool(loader, events, targets={"m": (PROD, CHAMP)})
    pool.apply(desired({"m": {PROD: ref(3), CHAMP: ref(3)}}))
    run_until_idle(pool)
    assert loader.calls == [ref(3)]
    assert pool.get("m", PROD) is pool.get("m", CHAMP)
    assert pool.get("m", PROD) is not None
    assert sorted(events.results()) == [
        ("m", "@champion", "success"),
        ("m", "Production", "success"),
    ]


def test_version_already_loaded_elsewhere_is_reused(loader: FakeLoader) -> None:
    pool = make_pool(loader)
    pool.apply(desired({"m": {PROD: ref(1), STAGING: ref(2)}}))
    run_until_idle(pool)
    staging = pool.get("m", STAGING)
    pool.apply(desired({"m": {PROD: ref(2), STAGING: ref(2)}}))  # 2 promoted
    run_until_idle(pool)
    assert loader.calls == [ref(1), ref(2)]
    assert pool.get("m", PROD) is staging


def test_shared_failure_is_reported_for_each_target(loader: FakeLoader, events: Events) -> None:
    pool = make_pool(loader, events, targets={"m": (PROD, CHAMP)})
    loader.failures[ref(3)] = LoadError("load", "nope")
    pool.apply(desired({"m": {PROD: ref(3), CHAMP: ref(3)}}))
    run_until_idle(pool)
    assert loader.calls == [ref(3)]
    assert sorted(events.results()) == [
        ("m", "@champion", "load_failed"),
        ("m", "Production", "load_failed"),
    ]


# --- unloads ------------------------------------------------------------------------


def test_target_emptied_by_apply_at_once(loader: FakeLoader, events: Events) -> None:
    pool = make_pool(loader, events)
    pool.apply(desired({"m": {PROD: ref(1), STAGING: ref(2)}}))
    run_until_idle(pool)
    held = pool.get("m", STAGING)

    pool.apply(
        desired(
            {"m": {PROD: ref(1), STAGING: None}}, {"m": {STAGING: "no version in stage Staging"}}
        )
    )
    # No reconcile needed: the target takes no more traffic right away.
    assert pool.get("m", STAGING) is None
    assert pool.get("m", PROD) is not None
    assert status(pool, STAGING) == "empty"
    assert slot(pool, STAGING).note == "no version in stage Staging"
    assert events.swaps[-1] == ("m", STAGING, "unloaded", 0.0)
    assert events.targets[-1] == ("m", STAGING, None)
    assert held.ref == ref(2)
    assert invoke(held) == {"predictions": [2, 2]}
    assert pool.reconcile_once() is None


def test_required_target_emptied_keeps_serving_flagged_stale(
    loader: FakeLoader, events: Events
) -> None:
    """Fail static: archiving the only Production version (or deleting the alias) does
    not take the model down; the target says why it is stale."""
    pool = make_pool(loader, events)
    pool.apply(desired({"m": {PROD: ref(1)}}))
    run_until_idle(pool)
    v1 = pool.get("m", PROD)
    pool.apply(desired({"m": {PROD: None}}, {"m": {PROD: "no version in stage Production"}}))
    assert pool.get("m", PROD) is v1
    assert pool.is_ready()
    assert pool.unready_reasons() == []
    assert status(pool, PROD) == "stale"
    assert slot(pool, PROD).stale_reason == "no version in stage Production"
    assert events.stale == [("m", PROD, "no version in stage Production")]
    assert "unloaded" not in [r for _, _, r in events.results()]
    assert pool.reconcile_once() is None  # nothing to load
    # The same reason again is no news.
    pool.apply(desired({"m": {PROD: None}}, {"m": {PROD: "no version in stage Production"}}))
    assert len(events.stale) == 1


def test_model_missing_from_the_registry_keeps_its_required_target(
    loader: FakeLoader, events: Events
) -> None:
    pool = make_pool(loader, events)
    pool.apply(desired({"m": {PROD: ref(1), STAGING: ref(2)}}))
    run_until_idle(pool)
    gone = DesiredState(
        {
            "m": ModelState(
                "m",
                False,
                {PROD: None, STAGING: None},
                notes={t: "model not found in the registry" for t in (PROD, STAGING)},
            )
        }
    )
    pool.apply(gone)
    assert pool.get("m", PROD).ref == ref(1)
    assert status(pool, PROD) == "stale"
    assert slot(pool, PROD).stale_reason == "model not found in the registry"
    # An optional target empties at once: its share goes to the others.
    assert pool.get("m", STAGING) is None
    assert status(pool, STAGING) == "empty"
    assert events.swaps[-1] == ("m", STAGING, "unloaded", 0.0)
    assert pool.is_ready()


def test_a_state_without_the_model_at_all_keeps_it_too(loader: FakeLoader) -> None:
    pool = make_pool(loader)
    pool.apply(desired({"m": {PROD: ref(1)}}))
    run_until_idle(pool)
    pool.apply(DesiredState())
    assert pool.get("m", PROD).ref == ref(1)
    assert slot(pool, PROD).stale_reason == "the registry names no version for this target"


def test_stale_target_comes_back_with_the_same_version(loader: FakeLoader, events: Events) -> None:
    """Renamed and renamed back: the same version, nothing to load, the flag clears."""
    pool = make_pool(loader, events)
    pool.apply(desired({"m": {PROD: ref(1)}}))
    run_until_idle(pool)
    pool.apply(desired({"m": {PROD: None}}, {"m": {PROD: "model not found in the registry"}}))
    pool.apply(desired({"m": {PROD: ref(1)}}))
    assert status(pool, PROD) == "ready"
    assert slot(pool, PROD).stale_reason is None
    assert events.stale == [("m", PROD, "model not found in the registry"), ("m", PROD, None)]
    assert pool.reconcile_once() is None
    assert loader.calls == [ref(1)]


def test_stale_target_swaps_normally_when_a_new_version_arrives(
    loader: FakeLoader, events: Events
) -> None:
    pool = make_pool(loader, events)
    pool.apply(desired({"m": {PROD: ref(1)}}))
    run_until_idle(pool)
    v1 = pool.get("m", PROD)
    pool.apply(desired({"m": {PROD: None}}, {"m": {PROD: "model not found in the registry"}}))
    pool.apply(desired({"m": {PROD: ref(7)}}))  # re-created, a new version in Production
    assert status(pool, PROD) == "pending"
    assert pool.get("m", PROD) is v1  # still serving until 7 is loaded
    assert events.stale[-1] == ("m", PROD, None)
    run_until_idle(pool)
    assert pool.get("m", PROD).ref == ref(7)
    assert status(pool, PROD) == "ready"


def test_required_target_emptied_before_anything_loaded_stays_unready(
    loader: FakeLoader, events: Events
) -> None:
    """Fail static has nothing to keep when nothing was loaded: unready, with the reason."""
    pool = make_pool(loader, events)
    loader.failures[ref(1)] = LoadError("load", "broken")
    pool.apply(desired({"m": {PROD: ref(1)}}))
    run_until_idle(pool)
    pool.apply(desired({"m": {PROD: None}}, {"m": {PROD: "model not found in the registry"}}))
    assert status(pool, PROD) == "empty"
    assert not pool.is_ready()
    assert pool.unready_reasons() == ["m Production: model not found in the registry"]
    assert events.stale == []


def test_unload_policy_empties_required_targets_at_once(loader: FakeLoader, events: Events) -> None:
    """--on-empty unload: the registry is obeyed literally (the old behaviour)."""
    pool = make_pool(loader, events, availability=UnloadEmptied())
    pool.apply(desired({"m": {PROD: ref(1)}}))
    run_until_idle(pool)
    assert pool.is_ready()
    pool.apply(desired({"m": {PROD: None}}, {"m": {PROD: "alias gone"}}))
    assert pool.get("m", PROD) is None
    assert not pool.is_ready()
    assert pool.unready_reasons() == ["m Production: alias gone"]
    assert status(pool, PROD) == "empty"
    assert events.swaps[-1] == ("m", PROD, "unloaded", 0.0)
    assert events.stale == []


def test_availability_policies() -> None:
    from service.lifecycle.availability import EmptiedVerdict, OnEmpty, policy_for

    assert FailStatic().on_emptied(required=True) is EmptiedVerdict.KEEP
    assert FailStatic().on_emptied(required=False) is EmptiedVerdict.UNLOAD
    assert UnloadEmptied().on_emptied(required=True) is EmptiedVerdict.UNLOAD
    assert UnloadEmptied().on_emptied(required=False) is EmptiedVerdict.UNLOAD
    assert isinstance(policy_for("keep"), FailStatic)
    assert isinstance(policy_for(OnEmpty.UNLOAD), UnloadEmptied)
    with pytest.raises(ValueError):
        policy_for("sometimes")


# --- desired changes while loading --------------------------------------------------


def test_stale_load_is_not_installed(loader: FakeLoader, events: Events) -> None:
    pool = make_pool(loader, events)
    pool.apply(desired({"m": {PROD: ref(1)}}))
    run_until_idle(pool)
    v1 = pool.get("m", PROD)

    def registry_moves_on(r: VersionRef) -> None:
        if r == ref(2):
            pool.apply(desired({"m": {PROD: ref(3)}}))

    loader.during_load = registry_moves_on
    pool.apply(desired({"m": {PROD: ref(2)}}))
    assert pool.reconcile_once() == 0.0
    assert pool.get("m", PROD) is v1  # not the stale version 2
    assert status(pool, PROD) == "pending"

    run_until_idle(pool)
    assert pool.get("m", PROD).ref == ref(3)
    assert loader.calls == [ref(1), ref(2), ref(3)]
    assert events.results() == [("m", "Production", "success")] * 2
    assert [v.ref for _, _, v in events.targets] == [ref(1), ref(3)]


def test_failure_of_a_load_the_registry_abandoned_is_forgotten(
    loader: FakeLoader, events: Events
) -> None:
    pool = make_pool(loader, events)
    loader.failures[ref(2)] = LoadError("load", "broken artifact")
    loader.during_load = lambda r: (
        pool.apply(desired({"m": {PROD: ref(3)}})) if r == ref(2) else None
    )
    pool.apply(desired({"m": {PROD: ref(2)}}))
    assert pool.reconcile_once() == 0.0
    assert pool.failure(ref(2)) is None  # nothing left to retry, no stale record
    assert events.results() == []
    run_until_idle(pool)
    assert pool.get("m", PROD).ref == ref(3)
    assert loader.calls == [ref(2), ref(3)]


def test_target_emptied_while_loading_stays_empty(loader: FakeLoader) -> None:
    pool = make_pool(loader)
    loader.during_load = lambda r: pool.apply(desired({"m": {PROD: None}}))
    pool.apply(desired({"m": {PROD: ref(1)}}))
    run_until_idle(pool)
    assert pool.get("m", PROD) is None
    assert status(pool, PROD) == "empty"


def test_status_while_loading(loader: FakeLoader) -> None:
    pool = make_pool(loader)
    seen: list[tuple[frozenset[VersionRef], str, str]] = []
    loader.during_load = lambda r: seen.append(
        (pool.loading, status(pool, PROD), status(pool, STAGING))
    )
    pool.apply(desired({"m": {PROD: ref(1), STAGING: ref(2)}}))
    run_until_idle(pool)
    assert seen == [({ref(1)}, "loading", "pending"), ({ref(2)}, "ready", "loading")]
    assert pool.loading == frozenset()


def test_loading_is_cleared_after_a_failure(loader: FakeLoader) -> None:
    pool = make_pool(loader)
    loader.failures[ref(1)] = LoadError("load", "x")
    pool.apply(desired({"m": {PROD: ref(1)}}))
    pool.reconcile_once()
    assert pool.loading == frozenset()
    assert status(pool, PROD) == "failed"


# --- Slot.status directly -----------------------------------------------------------


def test_slot_status_values(tmp_path: Path) -> None:
    s = Slot("m", PROD, required=True)
    assert s.status(None) == "waiting_for_registry"
    s.desired_known = True
    assert s.status(None) == "empty"
    s.desired = ref(2)
    assert s.status(None) == "pending"
    assert s.status(None, {ref(2)}) == "loading"
    assert s.status(None, {ref(9)}) == "pending"
    failure = Failure(1, "boom", "load", time.time(), time.monotonic() + 10)
    assert s.status(failure) == "failed"
    assert s.status(failure, {ref(2)}) == "loading"
    s.current = FakeLoader(tmp_path)(ref(2))
    assert s.status(None) == "ready"
    s.current = FakeLoader(tmp_path)(ref(1))
    assert s.status(None) == "pending"
    s.desired = None
    assert s.status(None) == "stale"
    assert s.stale_reason == "the registry names no version for this target"
    s.note = "no version in stage Production"
    assert s.stale_reason == "no version in stage Production"


# --- loads on threads: per model, concurrent across models, with a deadline ------------


class GatedLoader(FakeLoader):
    """A loader whose loads of chosen versions block until their gate opens. Events,
    never sleeps: each load says when it has started."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.gates: dict[VersionRef, threading.Event] = {}
        self.started: dict[VersionRef, threading.Event] = {}
        self.returned: list[weakref.ref[LoadedVersion]] = []

    def gate(self, r: VersionRef) -> threading.Event:
        self.started.setdefault(r, threading.Event())
        return self.gates.setdefault(r, threading.Event())

    def __call__(self, r: VersionRef) -> LoadedVersion:
        self.calls.append(r)
        self.started.setdefault(r, threading.Event()).set()
        gate = self.gates.get(r)
        if gate is not None:
            assert gate.wait(30), f"gate of {r} never opened"
        loaded = LoadedVersion(
            ref=r,
            model=VersionModel(r.version),
            metadata=None,
            input_schema=None,
            with_params=False,
            local_dir=str(self.tmp_path),
        )
        self.returned.append(weakref.ref(loaded))
        return loaded


class Signals(Events):
    """Events, plus a threading.Event per (model, target, result) to wait on."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[tuple[str, str, str], threading.Event] = {}
        self._lock = threading.Lock()

    def _event(self, key: tuple[str, str, str]) -> threading.Event:
        with self._lock:
            return self.seen.setdefault(key, threading.Event())

    def observer(self) -> PoolObserver:
        def on_swap(m: str, t: Target, result: str, secs: float) -> None:
            self.swaps.append((m, t, result, secs))
            self._event((m, t.text, result)).set()

        return PoolObserver(
            on_swap=on_swap, on_target=lambda m, t, v: self.targets.append((m, t, v))
        )

    def wait(self, model: str, target: Target, result: str) -> None:
        assert self._event((model, target.text, result)).wait(30), (model, target, result)


def threaded_pool(
    loader: FakeLoader,
    events: Events,
    targets: dict[str, tuple[Target, ...]],
    load_timeout_s: float = 600.0,
    max_concurrent_loads: int = 2,
    retry_base_s: float = 30.0,
) -> ModelPool:
    return ModelPool(
        targets,
        loader,
        required=lambda model, target: target == PROD,
        retry=ExponentialBackoff(retry_base_s, retry_base_s),
        observer=events.observer(),
        load_timeout_s=load_timeout_s,
        max_concurrent_loads=max_concurrent_loads,
    )


@pytest.fixture
def gated(tmp_path: Path) -> GatedLoader:
    return GatedLoader(tmp_path)


def test_a_hung_load_does_not_hold_up_another_models_swap(gated: GatedLoader) -> None:
    signals = Signals()
    pool = threaded_pool(gated, signals, {"a": (PROD,), "b": (PROD,)})
    hung = gated.gate(ref(1, "a"))
    pool.start()
    try:
        pool.apply(desired({"a": {PROD: ref(1, "a")}, "b": {PROD: ref(1, "b")}}))
        assert gated.started[ref(1, "a")].wait(30)
        signals.wait("b", PROD, "success")  # b is served while a's load hangs
        assert pool.get("b", PROD).ref == ref(1, "b")
        assert pool.get("a", PROD) is None
        assert status(pool, PROD, "a") == "loading"
        assert pool.loading == {ref(1, "a")}
        # b moves on again, still while a hangs.
        pool.apply(desired({"a": {PROD: ref(1, "a")}, "b": {PROD: ref(2, "b")}}))
        signals.wait("b", PROD, "success")
        assert wait_for(lambda: pool.get("b", PROD).ref == ref(2, "b"))
        hung.set()
        signals.wait("a", PROD, "success")
        assert pool.is_ready()
    finally:
        for gate in gated.gates.values():
            gate.set()
        pool.stop()


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll a condition the pool's own threads make true (no fixed sleep)."""
    return wait_until(check, timeout, interval=0.005)


def test_one_load_per_model_at_a_time(gated: GatedLoader) -> None:
    """Driven by hand with real load threads: reconcile_once starts what may start."""
    pool = threaded_pool(gated, Events(), {"m": (PROD, STAGING)})
    first = gated.gate(ref(1))
    pool.apply(desired({"m": {PROD: ref(1), STAGING: ref(2)}}))
    assert pool.reconcile_once() == 0.0
    assert gated.started[ref(1)].wait(30)
    due = pool.reconcile_once()  # the same model is busy: nothing starts, the deadline is due
    assert due is not None and 590 < due <= 600
    assert gated.calls == [ref(1)]
    first.set()
    assert wait_for(lambda: pool.get("m", PROD) is not None)
    assert pool.reconcile_once() == 0.0
    assert wait_for(lambda: pool.get("m", STAGING) is not None)
    assert gated.calls == [ref(1), ref(2)]


def test_loads_of_different_models_run_together_up_to_the_limit(gated: GatedLoader) -> None:
    pool = threaded_pool(
        gated, Events(), {"a": (PROD,), "b": (PROD,), "c": (PROD,)}, max_concurrent_loads=2
    )
    gates = [gated.gate(ref(1, name)) for name in "abc"]
    pool.apply(desired({name: {PROD: ref(1, name)} for name in "abc"}))
    assert pool.reconcile_once() == 0.0
    assert pool.reconcile_once() == 0.0
    assert gated.started[ref(1, "a")].wait(30) and gated.started[ref(1, "b")].wait(30)
    assert pool.reconcile_once() > 0  # two loads in flight: c waits its turn
    assert pool.loading == {ref(1, "a"), ref(1, "b")}
    gates[0].set()
    assert wait_for(lambda: pool.get("a", PROD) is not None)
    assert pool.reconcile_once() == 0.0
    assert gated.started[ref(1, "c")].wait(30)
    for gate in gates:
        gate.set()
    assert wait_for(lambda: pool.is_ready())


def test_a_load_past_its_deadline_fails_with_load_timeout_and_its_result_is_discarded(
    gated: GatedLoader,
) -> None:
    signals = Signals()
    pool = threaded_pool(gated, signals, {"m": (PROD,)}, load_timeout_s=0.0, retry_base_s=0.001)
    pool.apply(desired({"m": {PROD: ref(1)}}))
    assert pool.reconcile_once() == 0.0  # version 1 has no gate: it loads at once
    assert wait_for(lambda: pool.get("m", PROD) is not None)
    v1 = pool.get("m", PROD)

    hung = gated.gate(ref(2))
    pool.apply(desired({"m": {PROD: ref(2)}}))
    assert pool.reconcile_once() == 0.0
    assert gated.started[ref(2)].wait(30)
    # The deadline (0 s here) has passed: the next look abandons the attempt.
    pool.reconcile_once()
    failure = pool.failure(ref(2))
    assert failure is not None
    assert failure.stage == "load_timeout"
    assert "did not finish within 0s" in failure.error
    assert failure.attempts == 1
    assert status(pool, PROD) == "failed"
    assert pool.loading == frozenset()
    assert ("m", "Production", "load_timeout") in signals.results()
    assert pool.get("m", PROD) is v1  # the old version keeps serving
    # No second attempt while the abandoned one still holds its thread.
    wait_until_retry_due(pool, ref(2))
    assert pool.reconcile_once() is None
    assert gated.calls.count(ref(2)) == 1

    # The abandoned load ends later: its version must not swap in, and is freed.
    hung.set()
    assert wait_for(lambda: len(gated.returned) == 2)
    abandoned = gated.returned[1]
    assert wait_for(lambda: ref(2) not in pool._loads)
    gc.collect()
    assert abandoned() is None  # dropped: its finalizer removes its folder
    assert pool.get("m", PROD) is v1
    assert ("m", "Production", "success") not in signals.results()[1:]

    # The retry (backoff of 1 ms) loads it again; this time in time (no deadline here).
    pool._load_timeout_s = 600.0
    wait_until_retry_due(pool, ref(2))
    assert pool.reconcile_once() == 0.0
    assert wait_for(lambda: pool.get("m", PROD).ref == ref(2))
    assert gated.calls.count(ref(2)) == 2
    assert pool.failure(ref(2)) is None


def test_a_version_dropped_by_the_registry_while_abandoned_leaves_no_failure(
    gated: GatedLoader,
) -> None:
    pool = threaded_pool(gated, Events(), {"m": (PROD,)}, load_timeout_s=0.0)
    hung = gated.gate(ref(1))
    pool.apply(desired({"m": {PROD: ref(1)}}))
    assert pool.reconcile_once() == 0.0
    assert gated.started[ref(1)].wait(30)
    pool.reconcile_once()
    assert pool.failure(ref(1)).stage == "load_timeout"
    pool.apply(desired({"m": {PROD: ref(3)}}))
    assert pool.failure(ref(1)) is None
    hung.set()
    assert wait_for(lambda: ref(1) not in pool._loads)
    assert pool.get("m", PROD) is None


@pytest.mark.timeout(60)
def test_the_pool_loads_again_after_a_stop_and_a_start(loader: FakeLoader) -> None:
    signals = Signals()
    pool = threaded_pool(loader, signals, {"m": (PROD,)})
    pool.start()
    pool.stop(timeout=10)
    pool.start()
    try:
        pool.apply(desired({"m": {PROD: ref(1)}}))
        signals.wait("m", PROD, "success")
        assert pool.get("m", PROD).ref == ref(1)
    finally:
        pool.stop(timeout=10)


# --- the pool applies the policy objects it is given --------------------------------


class OptionalFirst:
    def order(self, wanted: Iterable[W]) -> list[W]:
        return sorted(wanted, key=lambda w: w.required)


class FixedRetry:
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.asked: list[int] = []

    def delay(self, failures: int) -> float:
        self.asked.append(failures)
        return self.delay_s


class KeepEverything:
    def on_emptied(self, required: bool) -> EmptiedVerdict:
        return EmptiedVerdict.KEEP


def policy_pool(loader: FakeLoader, **policies: Any) -> ModelPool[LoadedVersion]:
    return ModelPool(
        {"m": (PROD,), "n": (STAGING,)},
        loader,
        required=lambda model, target: target == PROD,
        spawn=run_inline,
        **policies,
    )


def test_the_pool_loads_in_the_order_its_load_order_says(loader: FakeLoader) -> None:
    both = desired({"m": {PROD: ref(1)}, "n": {STAGING: ref(1, "n")}})
    default = policy_pool(loader)
    default.apply(both)
    default.reconcile_once()
    assert loader.calls == [ref(1)]  # required first

    loader.calls.clear()
    reverse = policy_pool(loader, load_order=OptionalFirst())
    reverse.apply(both)
    reverse.reconcile_once()
    assert loader.calls == [ref(1, "n")]


def test_the_pool_waits_as_its_retry_policy_says(loader: FakeLoader) -> None:
    retry = FixedRetry(1234.0)
    pool = policy_pool(loader, retry=retry)
    loader.failures[ref(1)] = LoadError("load", "broken")
    before = time.monotonic()
    pool.apply(desired({"m": {PROD: ref(1)}, "n": {STAGING: None}}))
    due = pool.reconcile_once()
    assert due == 0.0
    assert pool.reconcile_once() == pytest.approx(1234.0, abs=5.0)
    failure = pool.failure(ref(1))
    assert failure is not None and failure.attempts == 1
    assert failure.retry_at - before == pytest.approx(1234.0, abs=5.0)
    assert retry.asked == [1]


def test_the_pool_settles_an_emptied_target_as_its_availability_policy_says(
    loader: FakeLoader,
) -> None:
    pool = policy_pool(loader, availability=KeepEverything())
    pool.apply(desired({"m": {PROD: ref(1)}, "n": {STAGING: ref(1, "n")}}))
    run_until_idle(pool)
    pool.apply(desired({"m": {PROD: None}, "n": {STAGING: None}}))
    # FailStatic would empty the optional Staging target; this policy keeps it, stale.
    assert pool.get("n", STAGING) is not None
    assert status(pool, STAGING, "n") == "stale"
    assert status(pool, PROD) == "stale"
