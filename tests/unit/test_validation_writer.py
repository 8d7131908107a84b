"""service/lifecycle/validation_writer.py: verdicts written once, failures counted and
said once, never raised; the thread does the I/O. The registry here is an in-memory
``VersionTags``; the real one is exercised in tests/integration/test_resilience.py."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping

import pytest

from registry_watcher.state import VersionRef
from service.lifecycle.validation_tags import ERROR_TAG, GATEWAY_TAG, RESULT_TAG, Validation
from service.lifecycle.validation_writer import FAILED, SKIPPED, WRITTEN, ValidationWriter
from tests.support.processes import wait_until

REF = VersionRef("diabetes", 3)
GATEWAY = "0.1.0"


class MemoryTags:
    """Model-version tags in a dict; ``refuse`` makes every call fail as a registry would."""

    def __init__(self) -> None:
        self.tags: dict[tuple[str, int], dict[str, str]] = {}
        self.calls: list[str] = []
        self.refuse: Exception | None = None

    def _check(self, call: str) -> None:
        self.calls.append(call)
        if self.refuse is not None:
            raise self.refuse

    def version_tags(self, model: str, version: int) -> Mapping[str, str]:
        self._check("get")
        return dict(self.tags.get((model, version), {}))

    def set_version_tag(self, model: str, version: int, key: str, value: str) -> None:
        self._check("set")
        self.tags.setdefault((model, version), {})[key] = value

    def delete_version_tag(self, model: str, version: int, key: str) -> None:
        self._check("delete")
        self.tags.get((model, version), {}).pop(key, None)


class Counts(Counter[str]):
    """What the writer counted, by result."""

    def add(self, result: str) -> None:
        self[result] += 1


def writer(tags: MemoryTags, counts: Counts, max_queued: int = 256) -> ValidationWriter:
    return ValidationWriter(tags, GATEWAY, counts.add, lambda: 0.0, max_queued)


def test_a_pass_is_written_then_remembered_without_reading_the_registry_again() -> None:
    tags, counts = MemoryTags(), Counts()
    w = writer(tags, counts)
    w.validated(REF, None)
    w.write_queued()
    assert tags.tags[("diabetes", 3)][RESULT_TAG] == "passed"
    assert tags.tags[("diabetes", 3)][GATEWAY_TAG] == GATEWAY
    calls = len(tags.calls)
    w.validated(REF, None)  # the same verdict again (another target, a reload)
    w.write_queued()
    assert len(tags.calls) == calls
    assert counts == {WRITTEN: 1, SKIPPED: 1}


def test_tags_another_replica_wrote_are_left_alone() -> None:
    tags, counts = MemoryTags(), Counts()
    at = "2026-11-29T00:00:00Z"
    tags.tags[("diabetes", 3)] = {RESULT_TAG: "passed", GATEWAY_TAG: GATEWAY, "x": at}
    assert writer(tags, counts).write(Validation(REF, None, 0.0)) == SKIPPED
    assert tags.calls == ["get"]
    assert counts == {SKIPPED: 1}


def test_a_failing_version_retried_is_written_once_and_a_later_pass_replaces_it() -> None:
    tags, counts = MemoryTags(), Counts()
    w = writer(tags, counts)
    for _ in range(3):  # the pool retries a failed smoke test with backoff
        w.validated(REF, "smoke test failed: ValueError: no")
        w.write_queued()
    assert tags.tags[("diabetes", 3)][RESULT_TAG] == "failed"
    assert tags.tags[("diabetes", 3)][ERROR_TAG] == "smoke test failed: ValueError: no"
    assert counts == {WRITTEN: 1, SKIPPED: 2}
    w.validated(REF, None)
    w.write_queued()
    assert tags.tags[("diabetes", 3)][RESULT_TAG] == "passed"
    assert ERROR_TAG not in tags.tags[("diabetes", 3)]
    assert counts[WRITTEN] == 2


def test_a_refused_write_is_counted_said_once_and_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tags, counts = MemoryTags(), Counts()
    tags.refuse = PermissionError("403 PERMISSION_DENIED token=abc123secret")
    w = writer(tags, counts)
    caplog.set_level(logging.DEBUG, logger="stageserve.validation")
    for version in (3, 4):
        w.validated(VersionRef("diabetes", version), None)
        w.write_queued()
    assert counts == {FAILED: 2}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "diabetes version 3" in message and "PermissionError" in message
    assert "serving is not affected" in message
    assert "abc123secret" not in caplog.text
    # not remembered: the next verdict for it tries again, and says it works again
    tags.refuse = None
    w.validated(VersionRef("diabetes", 3), None)
    w.write_queued()
    assert counts[WRITTEN] == 1
    assert "written to the registry again" in caplog.text


def test_a_full_queue_drops_the_verdict_without_waiting() -> None:
    tags, counts = MemoryTags(), Counts()
    w = writer(tags, counts, max_queued=1)
    w.validated(VersionRef("m", 1), None)
    w.validated(VersionRef("m", 2), None)  # no thread runs: the queue stays full
    assert counts == {FAILED: 1}
    assert tags.calls == []


def test_the_writer_thread_does_the_writing() -> None:
    tags, counts = MemoryTags(), Counts()
    w = writer(tags, counts)
    w.start()
    try:
        w.validated(REF, None)
        assert wait_until(lambda: counts[WRITTEN] == 1, 5, 0.01)
    finally:
        w.stop()
    assert tags.tags[("diabetes", 3)][RESULT_TAG] == "passed"
