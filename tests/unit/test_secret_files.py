"""Secrets kept in files: ``--admin-token-file`` / ``--webhook-secret-file`` and the
STAGESERVE_*_FILE variables they set. The secret is read from the file (whitespace
stripped), refused at start when the file cannot give one, never on the command line,
and redacted like the variables' own values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry_watcher.redact import (
    MAX_SECRET_FILE_CHARS,
    SECRET_FILE_ENV_VARS,
    configured_secrets,
    redact_text,
)
from service.cli.main import main
from service.cli.parser import build_parser
from service.cli.serve_options import SECRET_FILE_FLAGS, serve_env
from service.config import ConfigError, Settings

REPO = Path(__file__).resolve().parents[2]
BASE = {"STAGESERVE_MODELS": "m", "MLFLOW_TRACKING_URI": "http://r:5000"}
TOKEN = "f1le-T0ken-ABC"
SECRET = "f1le-W3bhook-DEF"


@pytest.fixture(autouse=True)
def never_exec(monkeypatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("stageserve tried to exec BentoML")

    monkeypatch.setattr(os, "execve", refuse)


@pytest.fixture
def files(tmp_path) -> tuple[Path, Path]:
    token, secret = tmp_path / "admin-token", tmp_path / "webhook-secret"
    token.write_text(f"  {TOKEN}\n")  # as `echo` or a Kubernetes secret writes it
    secret.write_text(f"{SECRET}\r\n")
    return token, secret


def test_settings_read_each_secret_from_its_file(files) -> None:
    token, secret = files
    env = {**BASE, "STAGESERVE_ADMIN_TOKEN_FILE": str(token),
           "STAGESERVE_WEBHOOK_SECRET_FILE": str(secret)}  # fmt: skip
    settings = Settings.from_env(env)
    assert (settings.admin_token, settings.webhook_secret) == (TOKEN, SECRET)
    assert TOKEN not in repr(settings) and SECRET not in repr(settings)


def test_the_variables_alone_still_work() -> None:
    env = {**BASE, "STAGESERVE_ADMIN_TOKEN": "t0ken", "STAGESERVE_WEBHOOK_SECRET": "s3c"}
    settings = Settings.from_env(env)
    assert (settings.admin_token, settings.webhook_secret) == ("t0ken", "s3c")


@pytest.mark.parametrize("name", ["STAGESERVE_ADMIN_TOKEN", "STAGESERVE_WEBHOOK_SECRET"])
def test_a_variable_and_its_file_twin_together_are_refused(name, files) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**BASE, name: "x", f"{name}_FILE": str(files[0])})
    assert str(refused.value) == f"{name} and {name}_FILE are both set: set only one of them"


CASES = {
    "missing": (lambda tmp: tmp / "nope", "no such file"),
    "empty": (lambda tmp: _write(tmp / "empty", " \n\n"), "is empty"),
    "folder": (lambda tmp: tmp, "is a folder, not a file"),
    "unreadable": (lambda tmp: _write(tmp / "f", "x") / "x", "cannot be read (Not a directory)"),
    "binary": (lambda tmp: _write_bytes(tmp / "bin", b"\xff\xfe\x00"), "is not UTF-8 text"),
    "huge": (
        lambda tmp: _write(tmp / "huge", "x" * (MAX_SECRET_FILE_CHARS + 1)),
        f"holds more than {MAX_SECRET_FILE_CHARS} characters",
    ),
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_file_without_a_secret_is_refused_naming_the_variable(case, tmp_path) -> None:
    make, why = CASES[case]
    path = make(tmp_path)
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**BASE, "STAGESERVE_WEBHOOK_SECRET_FILE": str(path)})
    assert str(refused.value) == f"STAGESERVE_WEBHOOK_SECRET_FILE: {str(path)!r}: {why}"


@pytest.mark.parametrize("command", [["serve"], ["demo"]])
def test_the_flags_set_the_variables_to_absolute_paths(command, files, monkeypatch) -> None:
    token, secret = files
    monkeypatch.chdir(token.parent)
    args = build_parser().parse_args(
        [*command, "--admin-token-file", token.name, "--webhook-secret-file", str(secret)]
    )
    env = serve_env(args, {})
    assert env == {"STAGESERVE_ADMIN_TOKEN_FILE": str(token),
                   "STAGESERVE_WEBHOOK_SECRET_FILE": str(secret)}  # fmt: skip
    assert TOKEN not in str(vars(args)) and SECRET not in str(vars(args))


def test_every_secret_file_a_flag_sets_is_one_the_redaction_reads() -> None:
    flags = [env_var for _, env_var, _ in SECRET_FILE_FLAGS]
    assert sorted(flags) == sorted(SECRET_FILE_ENV_VARS)


@pytest.mark.parametrize("command", [["serve"], ["demo"]])
@pytest.mark.parametrize("case", ["missing", "empty"])
def test_a_flag_naming_a_file_without_a_secret_is_refused(
    command, case, tmp_path, capsys, monkeypatch
):
    make, why = CASES[case]
    path = make(tmp_path)
    monkeypatch.chdir(tmp_path)  # where a demo that went on would make ./demo-registry
    assert main([*command, "--admin-token-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].endswith(
        f"error: argument --admin-token-file: {str(path)!r}: {why}"
    )
    assert not (tmp_path / "demo-registry").exists()


def test_serve_says_which_file_the_variable_names(tmp_path, capsys, monkeypatch) -> None:
    """The path is no secret: the line that refuses it shows it (not masked as a pair)."""
    empty = tmp_path / "empty"
    empty.write_text("\n")
    monkeypatch.setenv("STAGESERVE_ADMIN_TOKEN_FILE", str(empty))
    monkeypatch.delenv("STAGESERVE_ADMIN_TOKEN", raising=False)
    assert main(["serve", "--registry-uri", "http://r:5000", "--model", "m"]) == 2
    assert capsys.readouterr().err == (
        f"stageserve: STAGESERVE_ADMIN_TOKEN_FILE: {str(empty)!r}: is empty\n"
    )


def test_serve_refuses_the_flag_with_the_variable_set(files, capsys, monkeypatch) -> None:
    monkeypatch.setenv("STAGESERVE_ADMIN_TOKEN", "from-env")
    flags = ["--registry-uri", "http://r:5000", "--model", "m"]
    assert main(["serve", *flags, "--admin-token-file", str(files[0])]) == 2
    assert capsys.readouterr().err == (
        "stageserve: STAGESERVE_ADMIN_TOKEN and STAGESERVE_ADMIN_TOKEN_FILE are both set: "
        "set only one of them\n"
    )


def test_a_relative_variable_is_resolved_before_the_workers_start(files, tmp_path) -> None:
    from service.cli.common import resolve_paths

    env = resolve_paths({"STAGESERVE_ADMIN_TOKEN_FILE": "admin-token"}, str(tmp_path))
    assert env["STAGESERVE_ADMIN_TOKEN_FILE"] == str(files[0])


def test_webhooks_refuses_a_secret_file_without_a_secret(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("STAGESERVE_WEBHOOK_SECRET_FILE", str(tmp_path / "nope"))
    assert main(["webhooks", "list", "--registry-uri", "sqlite:///x.db"]) == 2
    said = f"stageserve: STAGESERVE_WEBHOOK_SECRET_FILE: {str(tmp_path / 'nope')!r}: no such file\n"
    assert capsys.readouterr().err == said


def test_secrets_read_from_files_are_redacted(files) -> None:
    token, secret = files
    env = {"STAGESERVE_ADMIN_TOKEN_FILE": str(token),
           "STAGESERVE_WEBHOOK_SECRET_FILE": str(secret)}  # fmt: skip
    assert set(configured_secrets(env)) == {TOKEN, SECRET}
    said = redact_text(f"presented {TOKEN} then {SECRET}", configured_secrets(env))
    assert said == "presented *** then ***"
    # a file that cannot be read adds nothing (the settings refuse it at start)
    assert configured_secrets({"STAGESERVE_ADMIN_TOKEN_FILE": str(token.parent / "no")}) == ()


def test_every_log_line_of_a_protected_process_hides_the_file_secret(files, tmp_path) -> None:
    """What the supervisor and each worker do at import (service/process_setup.py)."""
    script = f"""
import logging, os
from service.logs import log_redaction
log_redaction.protect(os.environ)
logging.basicConfig(level=logging.INFO)
logging.getLogger("starlette").warning("the client presented %s", "{TOKEN}")
logging.getLogger("mlflow").warning("signature made with {SECRET}")
print("done")
"""
    env = {"PYTHONPATH": str(REPO), "STAGESERVE_ADMIN_TOKEN_FILE": str(files[0]),
           "STAGESERVE_WEBHOOK_SECRET_FILE": str(files[1])}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path, env=env)  # fmt: skip
    text = out.stdout + out.stderr
    assert "done" in text and "the client presented ***" in text, text
    assert "signature made with ***" in text
    assert TOKEN not in text and SECRET not in text
