"""service/lifecycle/validation_tags.py: what a smoke test writes back, written once."""

from __future__ import annotations

from registry_watcher.redact import MASK, Redactor
from registry_watcher.state import VersionRef
from service.lifecycle.validation_tags import (
    AT_TAG,
    ERROR_TAG,
    FAILED,
    GATEWAY_TAG,
    MAX_ERROR_CHARS,
    PASSED,
    RESULT_TAG,
    Validation,
    bounded_error,
    iso_utc,
    plan_write,
)

REF = VersionRef("diabetes", 3)
AT = 1796047387.0  # 2026-11-30T14:03:07Z
GATEWAY = "0.1.0"


def passed() -> Validation:
    return Validation(REF, None, AT)


def failed(error: str = "smoke test failed: ValueError: no") -> Validation:
    return Validation(REF, error, AT)


def test_a_pass_on_a_version_without_tags_writes_result_time_and_gateway() -> None:
    write = plan_write({}, passed(), GATEWAY)
    assert write is not None
    assert write.set == (
        (AT_TAG, "2026-11-30T14:03:07Z"),
        (GATEWAY_TAG, GATEWAY),
        (RESULT_TAG, PASSED),
    )
    assert write.delete == ()


def test_a_failure_writes_its_error_and_the_result_comes_last() -> None:
    write = plan_write({}, failed(), GATEWAY)
    assert write is not None
    assert dict(write.set) == {
        ERROR_TAG: "smoke test failed: ValueError: no",
        AT_TAG: "2026-11-30T14:03:07Z",
        GATEWAY_TAG: GATEWAY,
        RESULT_TAG: FAILED,
    }
    assert write.set[-1] == (RESULT_TAG, FAILED)  # the commit mark


def test_the_same_result_from_the_same_gateway_version_is_not_written_again() -> None:
    existing = {RESULT_TAG: PASSED, GATEWAY_TAG: GATEWAY, AT_TAG: "2026-11-29T00:00:00Z"}
    assert plan_write(existing, passed(), GATEWAY) is None
    existing_failure = {RESULT_TAG: FAILED, GATEWAY_TAG: GATEWAY, ERROR_TAG: "an older reason"}
    assert plan_write(existing_failure, failed("another reason"), GATEWAY) is None


def test_another_result_or_another_gateway_version_is_written() -> None:
    existing = {RESULT_TAG: PASSED, GATEWAY_TAG: GATEWAY}
    assert plan_write(existing, failed(), GATEWAY) is not None
    assert plan_write(existing, passed(), "0.2.0") is not None
    # a write cut short before its result: the details alone do not count as done
    assert plan_write({GATEWAY_TAG: GATEWAY, AT_TAG: "x"}, passed(), GATEWAY) is not None


def test_a_pass_after_a_failure_deletes_the_old_error() -> None:
    existing = {RESULT_TAG: FAILED, GATEWAY_TAG: GATEWAY, ERROR_TAG: "smoke test failed"}
    write = plan_write(existing, passed(), GATEWAY)
    assert write is not None
    assert write.delete == (ERROR_TAG,)
    assert ERROR_TAG not in dict(write.set)


def test_tags_of_other_owners_are_never_touched() -> None:
    existing = {"prediction_works": "true", "team": "risk"}
    for validation in (passed(), failed()):
        write = plan_write(existing, validation, GATEWAY)
        assert write is not None
        touched = {key for key, _ in write.set} | set(write.delete)
        assert all(key.startswith("stageserve.validation") for key in touched)


def test_the_error_is_redacted_then_bounded() -> None:
    secret = "s3cr3t-registry-token"
    redactor = Redactor([secret])
    text = f"smoke test failed: GET http://user:pw@host/x?token=abc with {secret}"
    error = bounded_error(text, redactor)
    assert secret not in error and "pw@" not in error and "abc" not in error
    assert MASK in error
    # a secret right at the cut is still masked whole: redaction comes first
    long = "x" * (MAX_ERROR_CHARS - 8) + " " + secret + " and more"
    bounded = bounded_error(long, redactor)
    assert len(bounded) == MAX_ERROR_CHARS
    assert bounded.endswith("...")
    assert "s3cr" not in bounded  # cut first, its start would have stayed
    assert bounded_error("   ", redactor) == "failed"


def test_the_planned_error_goes_through_the_redactor() -> None:
    redactor = Redactor(["hunter2hunter2"])
    write = plan_write({}, failed("boom with hunter2hunter2"), GATEWAY, redactor)
    assert write is not None
    assert "hunter2hunter2" not in dict(write.set)[ERROR_TAG]


def test_times_are_iso_utc() -> None:
    assert iso_utc(0.0) == "1970-01-01T00:00:00Z"
    assert iso_utc(AT) == "2026-11-30T14:03:07Z"
