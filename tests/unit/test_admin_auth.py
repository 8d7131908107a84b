"""Admin write authorisation: off without a token, 401 without or with a wrong one."""

from __future__ import annotations

import pytest

from service.api.admin import check_token


def test_without_a_configured_token_writes_are_off() -> None:
    error = check_token(None, "Bearer anything")
    assert error is not None and error.status == 403
    assert "STAGESERVE_ADMIN_TOKEN" in error.message


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer ", "Basic c2VjcmV0", "secret", "Bearer secreT"]
)
def test_missing_or_wrong_token_is_401(header) -> None:
    error = check_token("secret", header)
    assert error is not None and error.status == 401
    assert "secret" not in error.message.replace("Invalid admin token", "")


@pytest.mark.parametrize("header", ["Bearer secret", "bearer secret", "Bearer  secret"])
def test_right_token_passes(header) -> None:
    assert check_token("secret", header) is None
