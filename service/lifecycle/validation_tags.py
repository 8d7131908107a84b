"""What a version's smoke test writes back to the registry, and whether it needs writing.

After a smoke test the gateway records its verdict on the model version as tags, readable
with any MLflow client (issue 13, item 5): ``stageserve.validation`` (``passed`` or
``failed``), ``stageserve.validation.error`` (a failure's reason, redacted and bounded),
``stageserve.validation.at`` (ISO 8601 UTC) and ``stageserve.validation.gateway`` (the
stageserve version that judged). Every worker of every replica validates each version it
loads, so a write is planned only when the version's tags do not already say the same
result from the same stageserve version: replicas agreeing leave the tags (and their
``at``) alone. The result tag is written last, as the commit mark: a write cut short
leaves the old result, so the next attempt does not take it as done.

Pure: the I/O (reading and writing the tags) is service/lifecycle/validation_writer.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from registry_watcher.redact import redact
from registry_watcher.state import VersionRef

PREFIX = "stageserve.validation"
RESULT_TAG = PREFIX
ERROR_TAG = f"{PREFIX}.error"
AT_TAG = f"{PREFIX}.at"
GATEWAY_TAG = f"{PREFIX}.gateway"

PASSED = "passed"
FAILED = "failed"

# MLflow allows 100,000 characters in a registry tag; a reason needs far fewer (the pool
# keeps 1,000 of a load error too), and a tag is read by people and UIs.
MAX_ERROR_CHARS = 1000


@dataclass(frozen=True)
class Validation:
    """One smoke test's verdict on one version: ``error`` None when it passed."""

    ref: VersionRef
    error: str | None
    at: float  # wall time, seconds since the epoch

    @property
    def result(self) -> str:
        return PASSED if self.error is None else FAILED


@dataclass(frozen=True)
class TagWrite:
    """The tags to set, in order (the result last), and those to delete."""

    set: tuple[tuple[str, str], ...]
    delete: tuple[str, ...]


def iso_utc(wall_time: float) -> str:
    """E.g. ``2026-11-30T14:03:07Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall_time))


def bounded_error(text: str, redactor: Callable[[str], str] = redact) -> str:
    """A failure's reason fit for a tag: credentials out first (a cut secret would no
    longer be recognised), then at most MAX_ERROR_CHARS characters."""
    clean = redactor(text).strip() or "failed"
    if len(clean) <= MAX_ERROR_CHARS:
        return clean
    return clean[: MAX_ERROR_CHARS - 3] + "..."


def already_recorded(existing: Mapping[str, str], result: str, gateway: str) -> bool:
    """The version's tags already say ``result``, judged by this stageserve version."""
    return existing.get(RESULT_TAG) == result and existing.get(GATEWAY_TAG) == gateway


def plan_write(
    existing: Mapping[str, str],
    validation: Validation,
    gateway: str,
    redactor: Callable[[str], str] = redact,
) -> TagWrite | None:
    """The write that records ``validation`` over ``existing`` tags; None when they
    already say so. A pass deletes the error a previous failure left."""
    if already_recorded(existing, validation.result, gateway):
        return None
    details = [(AT_TAG, iso_utc(validation.at)), (GATEWAY_TAG, gateway)]
    if validation.error is not None:
        details.insert(0, (ERROR_TAG, bounded_error(validation.error, redactor)))
    delete = (ERROR_TAG,) if validation.error is None and ERROR_TAG in existing else ()
    return TagWrite(set=(*details, (RESULT_TAG, validation.result)), delete=delete)
