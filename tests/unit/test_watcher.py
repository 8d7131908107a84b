"""registry_watcher.watcher: polling, diffing, notification, failure handling.

The registry is a small in-memory class implementing the watcher's Reader protocol;
tests change its data between polls and can make it raise.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from registry_watcher.schedule import PollSchedule
from registry_watcher.snapshot import READY, RegistryModel, RegistryVersion
from registry_watcher.state import DesiredState, StateDiff, TargetChange, VersionRef
from registry_watcher.targets import Target, parse_target
from registry_watcher.watcher import PollResult, Reader, RegistryWatcher
from tests.integration.harness import wait_until

PROD = parse_target("Production")
STAGING = parse_target("Staging")
CHAMP = parse_target("@champion")
CHALLENGER = parse_target("@challenger")


def mv(n: int, stage: str = "None", model: str = "m", status: str = READY) -> RegistryVersion:
    return RegistryVersion(model, n, stage, f"s3://b/{model}/{n}", f"run{n}", status)


def ref(n: int, model: str = "m") -> VersionRef:
    return mv(n, model=model).ref()


class FakeRegistry:
    """In-memory Reader: what search() and get_version() answer is test data."""

    def __init__(self) -> None:
        self.models: dict[str, RegistryModel] = {}
        self.versions: dict[tuple[str, int], RegistryVersion] = {}
        self.search_error: Exception | None = None
        self.get_version_error: Exception | None = None
        self.search_calls: list[list[str]] = []
        self.get_version_calls: list[tuple[str, int]] = []

    def put(
        self,
        name: str = "m",
        latest: tuple[RegistryVersion, ...] = (),
        aliases: dict[str, int] | None = None,
        tags: dict[str, str] | None = None,
        created: int = 1000,
        extra: tuple[RegistryVersion, ...] = (),
    ) -> None:
        self.models[name] = RegistryModel(name, created, latest, aliases or {}, tags or {})
        for v in (*latest, *extra):
            self.versions[(name, v.version)] = v

    def search(self, names: list[str]) -> list[RegistryModel]:
        self.search_calls.append(list(names))
        if self.search_error is not None:
            raise self.search_error
        return [self.models[n] for n in names if n in self.models]

    def get_version(self, model: str, version: int) -> RegistryVersion | None:
        self.get_version_calls.append((model, version))
        if self.get_version_error is not None:
            raise self.get_version_error
        return self.versions.get((model, version))


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[DesiredState, StateDiff]] = []

    def __call__(self, state: DesiredState, diff: StateDiff) -> None:
        self.calls.append((state, diff))


def make(
    registry: FakeRegistry,
    targets: dict[str, tuple[Target, ...]] | None = None,
    **kwargs: object,
) -> tuple[RegistryWatcher, Recorder]:
    watcher = RegistryWatcher(registry, targets or {"m": (PROD, STAGING)}, **kwargs)  # type: ignore[arg-type]
    recorder = Recorder()
    watcher.subscribe(recorder)
    return watcher, recorder


def test_fake_registry_implements_the_reader_protocol() -> None:
    reader: Reader = FakeRegistry()
    assert reader.search([]) == []


# --- notifications ------------------------------------------------------------------


def test_first_poll_notifies_subscribers() -> None:
    registry = FakeRegistry()
    registry.put(latest=(mv(1, "Production"), mv(2, "Staging")))
    watcher, recorder = make(registry)
    assert watcher.status.last_success_at is None  # no state yet
    assert watcher.state == DesiredState()

    result = watcher.poll_once()

    assert result.ok
    assert result.error is None
    assert watcher.status.last_success_at is not None  # has a state
    assert len(recorder.calls) == 1
    state, diff = recorder.calls[0]
    assert state is watcher.state
    assert state.version_for("m", PROD) == ref(1)
    assert state.version_for("m", STAGING) == ref(2)
    assert diff.target_changes == (
        TargetChange("m", PROD, None, ref(1)),
        TargetChange("m", STAGING, None, ref(2)),
    )
    assert result.diff == diff
    assert registry.search_calls == [["m"]]


def test_first_poll_notifies_even_when_nothing_resolves() -> None:
    watcher, recorder = make(FakeRegistry())
    result = watcher.poll_once()
    assert result.ok
    assert len(recorder.calls) == 1
    state, diff = recorder.calls[0]
    assert not diff
    assert state.models["m"].found is False
    assert state.models["m"].notes[PROD] == "model not found in the registry"


def test_unchanged_poll_does_not_notify() -> None:
    registry = FakeRegistry()
    registry.put(latest=(mv(1, "Production"),))
    watcher, recorder = make(registry)
    watcher.poll_once()
    first_state = watcher.state

    result = watcher.poll_once()

    assert result.ok
    assert not result.diff
    assert len(recorder.calls) == 1
    assert watcher.state == first_state
    assert watcher.status.polls == 2


def test_change_notifies_with_the_target_change() -> None:
    registry = FakeRegistry()
    registry.put(latest=(mv(1, "Production"), mv(2, "Staging")))
    watcher, recorder = make(registry)
    watcher.poll_once()

    registry.put(latest=(mv(2, "Production"), mv(1, "Archived")))  # 2 promoted, 1 archived
    result = watcher.poll_once()

    assert len(recorder.calls) == 2
    state, diff = recorder.calls[1]
    assert diff.target_changes == (
        TargetChange("m", PROD, ref(1), ref(2)),
        TargetChange("m", STAGING, ref(2), None),
    )
    assert diff.tag_changes == ()
    assert result.diff == diff
    assert watcher.state is state
    assert state.models["m"].notes[STAGING] == "no version in stage Staging"


def test_tag_change_notifies() -> None:
    registry = FakeRegistry()
    registry.put(latest=(mv(1, "Production"),), tags={"traffic": "a"})
    watcher, recorder = make(registry)
    watcher.poll_once()
    registry.put(latest=(mv(1, "Production"),), tags={"traffic": "b"})
    watcher.poll_once()
    assert len(recorder.calls) == 2
    _, diff = recorder.calls[1]
    assert diff.target_changes == ()
    assert diff.tag_changes == ("m",)
    assert watcher.state.models["m"].tags == {"traffic": "b"}


def test_model_disappearing_notifies() -> None:
    registry = FakeRegistry()
    registry.put(latest=(mv(1, "Production"),))
    watcher, recorder = make(registry, {"m": (PROD,)})
    watcher.poll_once()
    del registry.models["m"]
    watcher.poll_once()
    _, diff = recorder.calls[1]
    assert diff.target_changes == (TargetChange("m", PROD, ref(1), None),)
    assert watcher.state.models["m"].found is False


def test_every_subscriber_is_notified_in_order() -> None:
    registry = FakeRegistry()
    registry.put(latest=(mv(1, "Production"),))
    order: list[str] = []
    watcher = RegistryWatcher(registry, {"m": (PROD,)})
    watcher.subscribe(lambda s, d: order.append("first"))
    watcher.subscribe(lambda s, d: order.append("second"))
    watcher.poll_once()
    assert order == ["first", "second"]


def test_several_models_are_read_in_one_search() -> None:
    registry = FakeRegistry()
    registry.put("a", latest=(mv(1, "Production", model="a"),))
    registry.put("b", latest=(mv(4, "Production", model="b"),))
    watcher, _ = make(registry, {"a": (PROD,), "b": (PROD,)})
    watcher.poll_once()
    assert len(registry.search_calls) == 1
    assert sorted(registry.search_calls[0]) == ["a", "b"]
    assert watcher.state.version_for("a", PROD) == ref(1, "a")
    assert watcher.state.version_for("b", PROD) == ref(4, "b")


def test_stage_and_alias_targets_together() -> None:
    # The documented use: serve Production and @champion side by side.
    registry = FakeRegistry()
    registry.put(latest=(mv(1, "Production"), mv(2)), aliases={"champion": 2})
    watcher, recorder = make(registry, {"m": (PROD, CHAMP)})
    result = watcher.poll_once()
    assert result.ok
    assert watcher.state.version_for("m", PROD) == ref(1)
    assert watcher.state.version_for("m", CHAMP) == ref(2)
    assert len(recorder.calls) == 1


# --- failures -----------------------------------------------------------------------


def test_failing_poll_keeps_the_last_known_good_state() -> None:
    registry = FakeRegistry()
    registry.put(latest=(mv(1, "Production"),))
    watcher, recorder = make(registry, poll_interval_s=2.0)
    watcher.poll_once()
    good = watcher.state
    assert watcher.status.reachable is True

    registry.search_error = ConnectionError("registry down")
    result = watcher.poll_once()

    assert not result.ok
    assert result.error == "ConnectionError: registry down"
    assert not result.diff
    assert watcher.state is good
    assert watcher.status.last_success_at is not None  # has a state
    assert len(recorder.calls) == 1
    status = watcher.status
    assert status.consecutive_failures == 1
    assert status.last_error == "ConnectionError: registry down"
    assert status.reachable is False
    assert status.polls == 2
    assert status.last_poll_duration_s is not None
    assert status.last_poll_duration_s >= 0

    watcher.poll_once()
    assert watcher.status.consecutive_failures == 2
    assert watcher.state is good


def test_failure_on_the_first_poll_leaves_no_state() -> None:
    registry = FakeRegistry()
    registry.search_error = TimeoutError("slow")
    watcher, recorder = make(registry)
    result = watcher.poll_once()
    assert not result.ok
    assert watcher.status.last_success_at is None  # no state yet
    assert watcher.state == DesiredState()
    assert recorder.calls == []
    assert watcher.status.last_success_at is None
    assert watcher.status.last_attempt_at is not None


def test_get_version_failure_is_a_failed_poll() -> None:
    registry = FakeRegistry()
    registry.put(aliases={"champion": 3}, extra=(mv(3),))
    registry.get_version_error = RuntimeError("500 from server")
    watcher, recorder = make(registry, {"m": (CHAMP,)})
    result = watcher.poll_once()
    assert not result.ok
    assert result.error == "RuntimeError: 500 from server"
    assert recorder.calls == []
    assert watcher.status.consecutive_failures == 1


def test_last_error_is_bounded() -> None:
    registry = FakeRegistry()
    registry.search_error = RuntimeError("x" * 10_000)
    watcher, _ = make(registry)
    result = watcher.poll_once()
    assert watcher.status.last_error is not None
    assert len(watcher.status.last_error) == 500
    assert watcher.status.last_error.startswith("RuntimeError: xxx")
    assert result.error == watcher.status.last_error


def test_a_failing_registry_is_polled_at_the_interval_with_jitter() -> None:
    """No backoff for polls: however long the outage, the next poll is about one
    interval away, so a registry that comes back is read again within 1.25 intervals."""
    registry = FakeRegistry()
    registry.put(latest=(mv(1, "Production"),))
    watcher, _ = make(registry, poll_interval_s=1.0)
    watcher.poll_once()
    assert watcher.next_delay() == 1.0

    registry.search_error = ConnectionError("down")
    delays = []
    for failures in range(1, 200):
        watcher.poll_once()
        assert watcher.status.consecutive_failures == failures
        delay = watcher.next_delay()
        assert 0.75 <= delay <= 1.25
        delays.append(delay)
    # Jittered (replicas drift apart), and about one poll per interval on average.
    assert max(delays) - min(delays) > 0.25
    assert 0.9 <= sum(delays) / len(delays) <= 1.1

    registry.search_error = None
    result = watcher.poll_once()
    assert result.ok
    assert watcher.status.consecutive_failures == 0
    assert watcher.status.last_error is None
    assert watcher.status.reachable is True
    assert watcher.next_delay() == 1.0


def test_the_watcher_uses_the_schedule_it_is_given() -> None:
    registry = FakeRegistry()
    registry.search_error = ConnectionError("down")
    schedule = PollSchedule(5.0, jitter=0.5, rand=lambda: 1.0)
    watcher, _ = make(registry, poll_interval_s=5.0, schedule=schedule)
    for _ in range(50):
        watcher.poll_once()
    assert watcher.next_delay() == 7.5


def test_a_registry_back_after_a_long_outage_is_read_within_two_intervals() -> None:
    """The issue's failure: after an outage the old backoff slept up to its 60 s cap
    through the registry's return. Driven by a fake clock: the watcher's own loop."""
    registry = FakeRegistry()
    registry.put(latest=(mv(1, "Production"),))
    watcher, recorder = make(registry, poll_interval_s=0.5)
    clock = 0.0
    watcher.poll_once()
    registry.search_error = ConnectionError("down")
    while clock < 30.0:  # a 30 s outage
        clock += watcher.next_delay()
        watcher.poll_once()
    registry.search_error = None
    registry.put(latest=(mv(2, "Production"),))
    back_at = clock  # the registry is back (and changed) right after the last failure
    clock += watcher.next_delay()
    assert watcher.poll_once().ok
    assert clock - back_at <= 2 * 0.5
    assert recorder.calls[-1][0].version_for("m", PROD).version == 2


def test_a_raising_subscriber_does_not_break_polling() -> None:
    registry = FakeRegistry()
    registry.put(latest=(mv(1, "Production"),))
    watcher = RegistryWatcher(registry, {"m": (PROD,)})

    def broken(state: DesiredState, diff: StateDiff) -> None:
        raise RuntimeError("subscriber bug")

    recorder = Recorder()
    watcher.subscribe(broken)
    watcher.subscribe(recorder)

    result = watcher.poll_once()
    assert result.ok
    assert len(recorder.calls) == 1
    assert watcher.status.consecutive_failures == 0

    registry.put(latest=(mv(2, "Production"),))
    result = watcher.poll_once()
    assert result.ok
    assert len(recorder.calls) == 2
    assert watcher.state.version_for("m", PROD) == ref(2)


# --- observer -----------------------------------------------------------------------


def test_on_poll_receives_every_poll_result() -> None:
    registry = FakeRegistry()
    registry.put(latest=(mv(1, "Production"),))
    seen: list[PollResult] = []
    watcher, _ = make(registry, on_poll=seen.append)

    first = watcher.poll_once()
    second = watcher.poll_once()
    registry.search_error = OSError("unreachable")
    third = watcher.poll_once()

    assert seen == [first, second, third]
    assert [r.ok for r in seen] == [True, True, False]
    assert seen[0].diff.target_changes == (TargetChange("m", PROD, None, ref(1)),)
    assert not seen[1].diff
    assert seen[2].error == "OSError: unreachable"
    assert all(r.duration_s >= 0 for r in seen)


def test_a_raising_on_poll_does_not_break_polling() -> None:
    registry = FakeRegistry()
    registry.put(latest=(mv(1, "Production"),))

    def broken(result: PollResult) -> None:
        raise RuntimeError("metrics bug")

    watcher, recorder = make(registry, on_poll=broken)
    assert watcher.poll_once().ok
    registry.search_error = OSError("down")
    assert not watcher.poll_once().ok
    assert len(recorder.calls) == 1


def test_status_bookkeeping() -> None:
    registry = FakeRegistry()
    registry.put(latest=(mv(1, "Production"),))
    watcher, _ = make(registry, registry_uri="http://registry:5000", poll_interval_s=3.0)
    status = watcher.status
    assert status.reachable is None
    assert status.polls == 0
    watcher.poll_once()
    assert status.polls == 1
    assert status.last_success_at is not None
    assert status.last_attempt_at is not None
    assert status.last_success_at >= status.last_attempt_at
    as_dict = status.as_dict()
    assert as_dict["registry_uri"] == "http://registry:5000"
    assert as_dict["poll_interval_s"] == 3.0
    assert as_dict["polls"] == 1
    assert as_dict["reachable"] is True
    assert as_dict["consecutive_failures"] == 0
    assert as_dict["last_error"] is None


# --- version details: fetched once --------------------------------------------------


def test_get_version_is_called_only_for_versions_not_yet_known() -> None:
    registry = FakeRegistry()
    registry.put(latest=(mv(9),), aliases={"champion": 3}, extra=(mv(3), mv(4), mv(5)))
    watcher, recorder = make(registry, {"m": (CHAMP, CHALLENGER)})

    watcher.poll_once()
    assert registry.get_version_calls == [("m", 3)]
    assert watcher.state.version_for("m", CHAMP) == ref(3)
    assert watcher.state.version_for("m", CHALLENGER) is None

    watcher.poll_once()
    watcher.poll_once()
    assert registry.get_version_calls == [("m", 3)]

    registry.put(latest=(mv(9),), aliases={"champion": 4, "challenger": 3})
    watcher.poll_once()
    assert registry.get_version_calls == [("m", 3), ("m", 4)]
    assert watcher.state.version_for("m", CHAMP) == ref(4)
    assert watcher.state.version_for("m", CHALLENGER) == ref(3)

    registry.put(latest=(mv(9),), aliases={"champion": 3, "challenger": 3})
    watcher.poll_once()
    assert registry.get_version_calls == [("m", 3), ("m", 4)]
    assert watcher.state.version_for("m", CHAMP) == ref(3)
    assert len(recorder.calls) == 3


def test_versions_in_latest_versions_are_never_fetched() -> None:
    registry = FakeRegistry()
    registry.put(latest=(mv(1, "Production"), mv(2)), aliases={"champion": 2, "challenger": 1})
    watcher, _ = make(registry, {"m": (CHAMP, CHALLENGER)})
    watcher.poll_once()
    watcher.poll_once()
    assert registry.get_version_calls == []
    assert watcher.state.version_for("m", CHAMP) == ref(2)
    assert watcher.state.version_for("m", CHALLENGER) == ref(1)


def test_pinned_versions_are_read_every_poll_and_deletion_is_noticed() -> None:
    registry = FakeRegistry()
    registry.put(latest=(mv(9, "Production"),), extra=(mv(3),))
    watcher, recorder = make(registry, {"m": (parse_target("3"), parse_target("4"))})
    watcher.poll_once()
    watcher.poll_once()
    assert registry.get_version_calls.count(("m", 3)) == 2
    assert registry.get_version_calls.count(("m", 4)) == 2
    assert watcher.state.version_for("m", parse_target("3")) == ref(3)
    assert watcher.state.version_for("m", parse_target("4")) is None
    assert watcher.state.models["m"].notes[parse_target("4")] == "version 4 does not exist"
    del registry.versions[("m", 3)]
    watcher.poll_once()
    assert watcher.state.version_for("m", parse_target("3")) is None
    assert recorder.calls[-1][1].target_changes == (
        TargetChange("m", parse_target("3"), ref(3), None),
    )


def test_alias_versions_are_read_once() -> None:
    registry = FakeRegistry()
    registry.put(latest=(mv(9, "Production"),), aliases={"champion": 3}, extra=(mv(3),))
    watcher, _ = make(registry, {"m": (CHAMP,)})
    for _ in range(3):
        watcher.poll_once()
    assert registry.get_version_calls.count(("m", 3)) == 1
    assert watcher.state.version_for("m", CHAMP) == ref(3)


def test_missing_version_that_appears_later_is_picked_up() -> None:
    registry = FakeRegistry()
    registry.put(latest=(mv(1, "Production"),), aliases={"champion": 2})
    watcher, recorder = make(registry, {"m": (CHAMP,)})
    watcher.poll_once()
    assert watcher.state.version_for("m", CHAMP) is None
    registry.versions[("m", 2)] = mv(2, "Archived")
    watcher.poll_once()
    assert watcher.state.version_for("m", CHAMP) == ref(2)
    assert recorder.calls[-1][1].target_changes == (TargetChange("m", CHAMP, None, ref(2)),)


def test_recreated_model_versions_are_fetched_again() -> None:
    registry = FakeRegistry()
    registry.put(latest=(mv(9),), aliases={"champion": 3}, created=1000, extra=(mv(3),))
    watcher, recorder = make(registry, {"m": (CHAMP,)})
    watcher.poll_once()
    assert registry.get_version_calls == [("m", 3)]

    # Deleted and registered again: version 3 is a different model now.
    new_v3 = replace(mv(3), source="s3://b/m/3-new", run_id="new")
    registry.put(latest=(mv(9),), aliases={"champion": 3}, created=2000, extra=(new_v3,))
    watcher.poll_once()
    assert registry.get_version_calls == [("m", 3), ("m", 3)]
    assert watcher.state.version_for("m", CHAMP) == new_v3.ref()
    assert recorder.calls[-1][1].target_changes == (TargetChange("m", CHAMP, ref(3), new_v3.ref()),)


def test_fetched_version_that_becomes_ready_is_picked_up() -> None:
    # The alias moves to a version outside latest_versions (an older one, here) that is
    # still registering on the first read and READY on the next.
    registry = FakeRegistry()
    registry.put(latest=(mv(6),), aliases={"champion": 4}, extra=(mv(4),))
    watcher, recorder = make(registry, {"m": (CHAMP,)})
    watcher.poll_once()
    assert watcher.state.version_for("m", CHAMP) == ref(4)

    registry.put(
        latest=(mv(6),), aliases={"champion": 5}, extra=(mv(5, status="PENDING_REGISTRATION"),)
    )
    watcher.poll_once()
    # Not READY: the target keeps version 4 meanwhile.
    assert watcher.state.version_for("m", CHAMP) == ref(4)
    assert "PENDING_REGISTRATION" in watcher.state.models["m"].notes[CHAMP]

    registry.versions[("m", 5)] = mv(5)  # registration finished
    watcher.poll_once()
    assert watcher.state.version_for("m", CHAMP) == ref(5)
    assert recorder.calls[-1][1].target_changes == (TargetChange("m", CHAMP, ref(4), ref(5)),)


def test_not_ready_latest_version_keeps_the_previous_one() -> None:
    registry = FakeRegistry()
    registry.put(latest=(mv(1, "Production"),))
    watcher, recorder = make(registry, {"m": (PROD,)})
    watcher.poll_once()
    registry.put(latest=(mv(2, "Production", status="PENDING_REGISTRATION"),))
    watcher.poll_once()
    assert watcher.state.version_for("m", PROD) == ref(1)
    assert len(recorder.calls) == 1
    registry.put(latest=(mv(2, "Production"),))
    watcher.poll_once()
    assert watcher.state.version_for("m", PROD) == ref(2)
    assert len(recorder.calls) == 2


# --- thread -------------------------------------------------------------------------


def watcher_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "registry-watcher"]


@pytest.mark.timeout(30)
def test_refresh_now_cuts_a_long_wait_short() -> None:
    registry = FakeRegistry()
    registry.put(latest=(mv(1, "Production"),))
    watcher = RegistryWatcher(registry, {"m": (PROD,)}, poll_interval_s=3600.0)
    first = threading.Event()
    changed = threading.Event()
    seen: list[VersionRef | None] = []

    def subscriber(state: DesiredState, diff: StateDiff) -> None:
        seen.append(state.version_for("m", PROD))
        if state.version_for("m", PROD) == ref(2):
            changed.set()
        first.set()

    watcher.subscribe(subscriber)
    watcher.start()
    try:
        [thread] = watcher_threads()
        assert thread is not None
        assert thread.is_alive()
        watcher.start()  # idempotent
        assert watcher_threads() == [thread]
        assert first.wait(10), "the first poll did not happen on start()"

        registry.put(latest=(mv(2, "Production"),))
        watcher.refresh_now()
        assert changed.wait(10), "refresh_now() did not trigger a poll"
        assert seen == [ref(1), ref(2)]
    finally:
        watcher.stop(timeout=10)
    assert watcher_threads() == []
    assert not thread.is_alive()
    assert watcher.status.polls == 2
    assert watcher.status.next_poll_in_s == 3600.0


@pytest.mark.timeout(30)
def test_the_watcher_polls_again_after_a_stop_and_a_start() -> None:
    registry = FakeRegistry()
    registry.put(latest=(mv(1, "Production"),))
    watcher = RegistryWatcher(registry, {"m": (PROD,)}, poll_interval_s=0.01)
    watcher.start()
    assert wait_until(lambda: watcher.status.polls >= 1, 10, interval=0.005)
    watcher.stop(timeout=10)
    polls = watcher.status.polls
    watcher.start()
    try:
        assert wait_until(lambda: watcher.status.polls > polls + 1, 10, interval=0.005), (
            "a restarted watcher does not poll"
        )
    finally:
        watcher.stop(timeout=10)
