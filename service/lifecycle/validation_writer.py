"""Writes each smoke test's verdict to the registry, off the load and request paths.

With ``STAGESERVE_WRITE_VALIDATION`` on, the loader hands every smoke test's verdict to
``ValidationWriter.validated`` (on the load thread: it only queues, never waits, never
raises); the writer's own thread (``BackgroundLoop("validation-writer")``) reads the
version's tags and writes what ``validation_tags.plan_write`` says, with the gateway's
registry credentials, each call one attempt with a bounded timeout
(registry_watcher/poll_client.py). A write that fails (registry down, permission denied)
is counted, logged once as a warning (redacted; then at DEBUG until a write succeeds)
and dropped: serving never waits for it or sees it, and the next load of that version
tries again. What this process recorded per version is remembered, so a version whose
smoke test keeps failing (retried with backoff) is written once, not at every retry;
other workers and replicas find the tags already there and skip (two that write at the
same instant both write the same result: harmless).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from registry_watcher.background import BackgroundLoop
from registry_watcher.lazy_client import LazyClient
from registry_watcher.outage import short_reason
from registry_watcher.redact import redact
from registry_watcher.state import VersionRef
from service.lifecycle.validation_tags import RESULT_TAG, Validation, plan_write

log = logging.getLogger("stageserve.validation")

WRITTEN, SKIPPED, FAILED = "written", "skipped", "failed"
WRITE_RESULTS = (WRITTEN, SKIPPED, FAILED)  # stageserve_validation_writes_total{result}
MAX_QUEUED = 256  # validations waiting for the writer's thread; more are dropped (failed)


class VersionTags(Protocol):
    """The model-version tag I/O the writer needs."""

    def version_tags(self, model: str, version: int) -> Mapping[str, str]: ...

    def set_version_tag(self, model: str, version: int, key: str, value: str) -> None: ...

    def delete_version_tag(self, model: str, version: int, key: str) -> None: ...


class RegistryVersionTags(LazyClient):
    """``VersionTags`` of an MLflow registry, each call one attempt with a bounded timeout
    (an http(s) registry; a database registry answers or fails at once). The client is
    made at the first call, on the writer's thread, not at the gateway's start."""

    def version_tags(self, model: str, version: int) -> Mapping[str, str]:
        return dict(self.client.get_model_version(model, str(version)).tags)

    def set_version_tag(self, model: str, version: int, key: str, value: str) -> None:
        self.client.set_model_version_tag(model, str(version), key, value)

    def delete_version_tag(self, model: str, version: int, key: str) -> None:
        self.client.delete_model_version_tag(model, str(version), key)


class ValidationWriter:
    """Smoke-test verdicts in, ``stageserve.validation`` tags out, on a thread of its own.

    ``count`` gets one of ``WRITE_RESULTS`` per verdict: ``written`` (tags changed),
    ``skipped`` (they already said so), ``failed`` (not written).
    """

    def __init__(
        self,
        tags: VersionTags,
        gateway: str,
        count: Callable[[str], None],
        clock: Callable[[], float] = time.time,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self._tags = tags
        self._gateway = gateway
        self._count = count
        self._clock = clock
        self._max_queued = max_queued
        self._queue: queue.Queue[Validation] = queue.Queue(max_queued)
        self._recorded: dict[VersionRef, str] = {}  # the result this process knows is there
        self._lock = threading.Lock()
        self._failing = False
        self._loop = BackgroundLoop("validation-writer", self.write_queued)

    def start(self) -> None:
        self._loop.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the write in hand; verdicts still queued are not written."""
        self._loop.stop(timeout)

    def validated(self, ref: VersionRef, error: str | None) -> None:
        """A smoke test's verdict (``error`` None: passed), from the load thread: queued
        for the writer's thread, or counted at once when already recorded."""
        validation = Validation(ref, error, self._clock())
        if self._is_recorded(validation):
            self._count(SKIPPED)
            return
        try:
            self._queue.put_nowait(validation)
        except queue.Full:
            self._failed(validation, f"{self._max_queued} writes already wait")
            return
        self._loop.wake()

    def write_queued(self) -> float | None:
        """The thread's step: every queued verdict written; then wait for the next."""
        while True:
            try:
                validation = self._queue.get_nowait()
            except queue.Empty:
                return None
            self.write(validation)

    def write(self, validation: Validation) -> str:
        """Record one verdict (read the tags, write what differs); its ``WRITE_RESULTS``
        word. Never raises."""
        if self._is_recorded(validation):
            self._count(SKIPPED)
            return SKIPPED
        ref = validation.ref
        try:
            existing = self._tags.version_tags(ref.model, ref.version)
            plan = plan_write(existing, validation, self._gateway)
            if plan is not None:
                for key in plan.delete:
                    self._tags.delete_version_tag(ref.model, ref.version, key)
                for key, value in plan.set:
                    self._tags.set_version_tag(ref.model, ref.version, key, value)
        except Exception as exc:  # whatever the registry says, serving goes on
            self._failed(validation, f"{short_reason(exc)}: {exc}")
            return FAILED
        with self._lock:
            self._recorded[ref] = validation.result
        result = SKIPPED if plan is None else WRITTEN
        self._count(result)
        if self._failing:
            self._failing = False
            log.info("validation tags are written to the registry again")
        if plan is None:
            log.debug("%s version %s: %s already recorded", ref.model, ref.version, RESULT_TAG)
        else:
            log.info(
                "%s version %s: %s=%s written to the registry",
                ref.model,
                ref.version,
                RESULT_TAG,
                validation.result,
            )
        return result

    def _is_recorded(self, validation: Validation) -> bool:
        with self._lock:
            return self._recorded.get(validation.ref) == validation.result

    def _failed(self, validation: Validation, reason: str) -> None:
        """Counted; said once as a warning, then at DEBUG until a write succeeds."""
        self._count(FAILED)
        ref = validation.ref
        level = logging.DEBUG if self._failing else logging.WARNING
        self._failing = True
        log.log(
            level,
            "%s version %s: %s=%s not written to the registry (%s); serving is not affected%s",
            ref.model,
            ref.version,
            RESULT_TAG,
            validation.result,
            redact(reason)[:2000],
            ""
            if level == logging.DEBUG
            else "; more failures are logged at DEBUG until a write succeeds",
        )
