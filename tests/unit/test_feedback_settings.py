"""The feedback settings: the request id key and the feedback token as variables or
files (refused when short, empty, or set twice), their flags, their redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry_watcher.redact import configured_secrets
from service.cli.parser import build_parser
from service.cli.serve_options import serve_env
from service.config import ConfigError, Settings

BASE = {"STAGESERVE_MODELS": "m"}
KEY = "0123456789abcdef0123"


def test_defaults() -> None:
    settings = Settings.from_env(BASE)
    assert (settings.request_id_key, settings.feedback_token) == (None, None)
    assert settings.feedback_max_age_s == 30 * 24 * 3600


def test_from_variables_and_files(tmp_path: Path) -> None:
    key_file, token_file = tmp_path / "key", tmp_path / "token"
    key_file.write_text(f"  {KEY}\n")
    token_file.write_text("tok-123\n")
    env = {**BASE, "STAGESERVE_REQUEST_ID_KEY_FILE": str(key_file),
           "STAGESERVE_FEEDBACK_TOKEN_FILE": str(token_file),
           "STAGESERVE_FEEDBACK_MAX_AGE": "86400"}  # fmt: skip
    settings = Settings.from_env(env)
    assert (settings.request_id_key, settings.feedback_token) == (KEY, "tok-123")
    assert settings.feedback_max_age_s == 86400
    assert KEY not in repr(settings) and "tok-123" not in repr(settings)
    assert set(configured_secrets(env)) >= {KEY, "tok-123"}
    variables = {"STAGESERVE_REQUEST_ID_KEY": KEY, "STAGESERVE_FEEDBACK_TOKEN": "tok-456"}
    assert set(configured_secrets(variables)) == {KEY, "tok-456"}


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"STAGESERVE_REQUEST_ID_KEY": "short"}, "at least 16"),
        ({"STAGESERVE_FEEDBACK_MAX_AGE": "0"}, "STAGESERVE_FEEDBACK_MAX_AGE"),
        ({"STAGESERVE_FEEDBACK_TOKEN": "a", "STAGESERVE_FEEDBACK_TOKEN_FILE": "/x"}, "both set"),
    ],
)
def test_refused(env: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        Settings.from_env({**BASE, **env})
    if "STAGESERVE_REQUEST_ID_KEY" in env:  # the message never quotes the key
        with pytest.raises(ConfigError) as info:
            Settings.from_env({**BASE, **env})
        assert env["STAGESERVE_REQUEST_ID_KEY"] not in str(info.value)


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_the_flags_set_the_file_variables(tmp_path: Path, command: str) -> None:
    key_file, token_file = tmp_path / "key", tmp_path / "token"
    key_file.write_text(KEY)
    token_file.write_text("tok")
    args = build_parser().parse_args(
        [command, "--request-id-key-file", str(key_file), "--feedback-token-file", str(token_file)]
    )
    env = serve_env(args, {})
    assert env["STAGESERVE_REQUEST_ID_KEY_FILE"] == str(key_file)
    assert env["STAGESERVE_FEEDBACK_TOKEN_FILE"] == str(token_file)
