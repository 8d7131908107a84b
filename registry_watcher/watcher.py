"""The polling loop: read the registry, resolve, diff, notify. Owns retries and backoff.

Polling is the source of truth. A failed poll keeps the last known good state (the
service keeps serving what it loaded) and the next poll comes after the usual
interval, jittered (``schedule.py`` says why polls do not back off); ``outage.py``
words what the log says of it.
``refresh_now()`` cuts the current wait short, for webhooks and tests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from registry_watcher.background import BackgroundLoop
from registry_watcher.diagnosis import ResolutionDiagnosis
from registry_watcher.outage import OutageLog
from registry_watcher.redact import redact, redact_url
from registry_watcher.schedule import PollSchedule
from registry_watcher.snapshot import (
    READY,
    RegistryModel,
    RegistryVersion,
    VersionKey,
    cacheable_keys,
    resolve_state,
    version_key,
    versions_to_fetch,
)
from registry_watcher.state import DesiredState, StateDiff, diff_states
from registry_watcher.targets import Target

log = logging.getLogger("stageserve.watcher")

Subscriber = Callable[[DesiredState, StateDiff], None]


class Reader(Protocol):
    def search(self, names: list[str]) -> list[RegistryModel]: ...
    def get_version(self, model: str, version: int) -> RegistryVersion | None: ...


@dataclass
class WatcherStatus:
    """The watcher's health, as /admin/models and metrics show it."""

    registry_uri: str | None
    poll_interval_s: float
    polls: int = 0
    consecutive_failures: int = 0
    last_success_at: float | None = None
    last_attempt_at: float | None = None
    last_error: str | None = None
    last_poll_duration_s: float | None = None
    next_poll_in_s: float | None = None
    reachable: bool | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "registry_uri": self.registry_uri,
            "poll_interval_s": self.poll_interval_s,
            "polls": self.polls,
            "reachable": self.reachable,
            "consecutive_failures": self.consecutive_failures,
            "last_success_at": self.last_success_at,
            "last_attempt_at": self.last_attempt_at,
            "last_poll_duration_s": self.last_poll_duration_s,
            "next_poll_in_s": self.next_poll_in_s,
            "last_error": self.last_error,
        }


@dataclass
class PollResult:
    ok: bool
    duration_s: float
    diff: StateDiff = field(default_factory=StateDiff)
    error: str | None = None


class RegistryWatcher:
    """Polls the registry for the served models and tells subscribers what changed."""

    def __init__(
        self,
        reader: Reader,
        targets: Mapping[str, tuple[Target, ...]],
        poll_interval_s: float = 2.0,
        registry_uri: str | None = None,
        on_poll: Callable[[PollResult], None] | None = None,
        schedule: PollSchedule | None = None,
    ) -> None:
        self._reader = reader
        self._targets = dict(targets)
        self._poll_interval_s = poll_interval_s
        self._schedule = schedule or PollSchedule(poll_interval_s)
        self._subscribers: list[Subscriber] = []
        self._on_poll = on_poll
        self._state = DesiredState()
        self._has_state = False
        self._known_versions: dict[VersionKey, RegistryVersion | None] = {}
        self._lock = threading.Lock()
        self._loop = BackgroundLoop("registry-watcher", self._poll_and_schedule)
        self.status = WatcherStatus(
            registry_uri=redact_url(registry_uri), poll_interval_s=poll_interval_s
        )
        # Says an outage once in full, then in one short line per poll.
        self._outage = OutageLog(registry_uri)
        # Says once, with what exists, why a model or target resolves to nothing.
        self._diagnosis = ResolutionDiagnosis(targets, getattr(reader, "model_names", None))

    @property
    def state(self) -> DesiredState:
        """Last known good desired state (empty until the first successful poll)."""
        return self._state

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def poll_once(self) -> PollResult:
        """One registry read, resolution, diff and notification. Never raises."""
        started = time.monotonic()
        self.status.last_attempt_at = time.time()
        try:
            snapshot = self._reader.search(list(self._targets))
            known = dict(self._known_versions)
            for model, version in versions_to_fetch(snapshot, self._targets, known):
                details = self._reader.get_version(model.name, version)
                if details is not None:
                    known[version_key(model, version)] = details
            new_state = resolve_state(self._targets, snapshot, known, self._state)
            # Keep for next time only READY details that aliases still point at: a
            # version still registering must be read again until it is READY.
            self._known_versions = {
                key: details
                for key in cacheable_keys(snapshot, self._targets)
                if (details := known.get(key)) is not None and details.status == READY
            }
        except Exception as exc:  # any registry failure: keep last known good
            duration = time.monotonic() - started
            self.status.consecutive_failures += 1
            self.status.last_error = redact(f"{type(exc).__name__}: {exc}")[:500]
            self.status.reachable = False
            self.status.polls += 1
            self.status.last_poll_duration_s = duration
            failures = self.status.consecutive_failures
            for level, line in self._outage.failed(exc, failures, time.time(), time.monotonic()):
                log.log(level, "%s", line)
            result = PollResult(ok=False, duration_s=duration, error=self.status.last_error)
            self._report(result)
            return result

        with self._lock:
            diff = diff_states(self._state, new_state)
            first = not self._has_state
            self._state = new_state
            self._has_state = True
        self._diagnose(snapshot, new_state)
        duration = time.monotonic() - started
        self.status.polls += 1
        ended_failures, self.status.consecutive_failures = self.status.consecutive_failures, 0
        self.status.last_error = None
        self.status.reachable = True
        self.status.last_success_at = time.time()
        self.status.last_poll_duration_s = duration
        for level, line in self._outage.succeeded(ended_failures, time.monotonic()):
            log.log(level, "%s", line)
        if diff or first:
            for change in diff.target_changes:
                log.info(
                    "registry: %s %s -> %s",
                    change.model,
                    change.target.text,
                    change.new.version if change.new else "nothing",
                )
            for subscriber in self._subscribers:
                try:
                    subscriber(new_state, diff)
                except Exception:
                    log.exception("watcher subscriber failed")
        result = PollResult(ok=True, duration_s=duration, diff=diff)
        self._report(result)
        return result

    def _diagnose(self, snapshot: list[RegistryModel], state: DesiredState) -> None:
        try:
            for finding in self._diagnosis.check(snapshot, state):
                log.log(finding.level, "%s", finding.message)
        except Exception:
            log.exception("diagnosis of the registry state failed")

    def _report(self, result: PollResult) -> None:
        if self._on_poll is not None:
            try:
                self._on_poll(result)
            except Exception:
                log.exception("poll observer failed")

    def next_delay(self) -> float:
        return self._schedule.delay(self.status.consecutive_failures)

    def refresh_now(self) -> None:
        """Cut the current wait short: poll again at once."""
        self._loop.wake()

    def start(self) -> None:
        self._loop.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._loop.stop(timeout)

    def _poll_and_schedule(self) -> float:
        """The background loop's step: one poll; the wait before the next."""
        self.poll_once()
        delay = self.next_delay()
        self.status.next_poll_in_s = delay
        return delay
