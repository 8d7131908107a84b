"""The CLI's argument handling and its refusals, without starting a server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.cli.main import main
from service.cli.parser import build_parser
from service.cli.serve_options import serve_env


@pytest.fixture(autouse=True)
def never_exec(monkeypatch) -> None:
    """A check that lets a command through would exec BentoML in place of pytest."""

    def refuse(*args: object) -> None:
        raise AssertionError("stageserve tried to exec BentoML")

    monkeypatch.setattr(os, "execve", refuse)


def test_serve_flags_become_environment() -> None:
    args = build_parser().parse_args(
        [
            "serve",
            "--registry-uri",
            "http://r:5000",
            "--model",
            "a",
            "--model",
            "b",
            "--target",
            "@champion",
            "--target",
            "Staging",
            "--workers",
            "3",
            "--poll-interval",
            "0.5",
            "--model-dir",
            "/tmp/m",
            "--no-smoke-test",
        ]
    )
    env = serve_env(args, {"KEEP": "1"})
    assert env == {
        "KEEP": "1",
        "STAGESERVE_REGISTRY_URI": "http://r:5000",
        "STAGESERVE_MODELS": "a,b",
        "STAGESERVE_TARGETS": "@champion,Staging",
        "STAGESERVE_WORKERS": "3",
        "STAGESERVE_POLL_INTERVAL": "0.5",
        "STAGESERVE_MODEL_DIR": "/tmp/m",
        "STAGESERVE_SMOKE_TEST": "false",
    }
    assert (args.host, args.port) == ("127.0.0.1", 3000)


def test_serve_without_flags_leaves_environment_alone() -> None:
    args = build_parser().parse_args(["serve"])
    assert serve_env(args, {"STAGESERVE_MODELS": "x"}) == {"STAGESERVE_MODELS": "x"}


def test_serve_without_a_model_refuses(capsys, monkeypatch) -> None:
    monkeypatch.delenv("STAGESERVE_MODELS", raising=False)
    assert main(["serve", "--registry-uri", "http://r:5000"]) == 2
    assert "STAGESERVE_MODELS" in capsys.readouterr().err


def test_serve_without_a_registry_refuses(capsys, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("STAGESERVE_REGISTRY_URI", raising=False)
    assert main(["serve", "--model", "m"]) == 2
    assert "MLFLOW_TRACKING_URI" in capsys.readouterr().err


def test_serve_with_a_bad_target_refuses(capsys) -> None:
    assert main(["serve", "--registry-uri", "x", "--model", "m", "--target", "@bad alias"]) == 2
    assert "argument --target: invalid alias '@bad alias'" in capsys.readouterr().err


def test_a_command_is_required() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([])


def test_runtime_folder_is_stable_per_user_and_port() -> None:
    from service.cli.runtime_dir import default_runtime_dir

    assert default_runtime_dir(3000) == default_runtime_dir(3000)  # a restart reuses it
    assert default_runtime_dir(3000) != default_runtime_dir(3001)


# --- impossible values are refused at once, naming the flag ---------------------------


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--port", "99999"], "argument --port: '99999' is not a port number (1-65535)"),
        (["--port", "0"], "argument --port: '0' is not a port number (1-65535)"),
        (["--port", "http"], "argument --port: 'http' is not a port number"),
        (["--target", ""], "argument --target: empty target"),
        (["--target", "  "], "argument --target: empty target"),
        (
            ["--target", "champion"],
            "argument --target: 'champion' is not an MLflow stage (None, Staging, Production, "
            "Archived); for an alias write '@champion'",
        ),
        (["--target", "Produciton"], "for an alias write '@Produciton'"),
        (["--workers", "0"], "argument --workers: '0': at least 1 worker is needed"),
        (["--workers", "two"], "argument --workers: 'two' is not a whole number"),
        (["--poll-interval", "0"], "argument --poll-interval: '0': give a finite number"),
        (["--poll-interval", "nan"], "argument --poll-interval: 'nan': give a finite number"),
        (["--poll-interval", "-1"], "argument --poll-interval: '-1'"),
        (["--model", ""], "argument --model: a model name cannot be empty"),
        (["--model", "a,b"], "argument --model: 'a,b': repeat --model for each model"),
        (["--registry-uri", ""], "argument --registry-uri: cannot be empty"),
        (["--host", ""], "argument --host: cannot be empty"),
    ],
)
def test_impossible_values_are_refused_naming_the_flag(flags, said, capsys) -> None:
    argv = ["serve", "--registry-uri", "http://r:5000", "--model", "m", *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert said in err, err


@pytest.mark.parametrize("target", ["Production", "production", "Staging", "None", "Archived"])
def test_every_mlflow_stage_is_accepted(target) -> None:
    args = build_parser().parse_args(["serve", "--target", target])
    assert args.target[0].lower() == target.lower()


def test_aliases_and_versions_are_accepted() -> None:
    args = build_parser().parse_args(["serve", "--target", "@champion", "--target", "07"])
    assert args.target == ["@champion", "7"]


def test_demo_refuses_a_bad_port_too(capsys) -> None:
    assert main(["demo", "--port", "70000"]) == 2
    assert "argument --port" in capsys.readouterr().err


# --- a busy port or runtime folder: one line, nothing touched -------------------------


def test_a_busy_port_is_refused_in_one_line_before_the_runtime_folder(
    tmp_path, capsys, monkeypatch
) -> None:
    import socket

    runtime = tmp_path / "runtime"
    monkeypatch.setenv("STAGESERVE_RUNTIME_DIR", str(runtime))
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        argv = ["serve", "--registry-uri", "http://r:5000", "--model", "m", "--port", str(port)]
        assert main(argv) == 1
    err = capsys.readouterr().err
    assert err == f"stageserve: port {port} is in use; pick another with --port\n"
    assert not runtime.exists()


def test_a_runtime_folder_in_use_is_refused(tmp_path) -> None:
    from service.cli.gateway_guard import GuardError, hold_runtime_dir

    fd = hold_runtime_dir(str(tmp_path))
    try:
        with pytest.raises(GuardError, match="another gateway is using"):
            hold_runtime_dir(str(tmp_path))
    finally:
        os.close(fd)
    os.close(hold_runtime_dir(str(tmp_path)))  # free again once the holder is gone


def test_the_runtime_lock_survives_exec(tmp_path) -> None:
    """`stageserve serve` execs BentoML: the lock must stay held by the new program."""
    import subprocess
    import sys

    script = (
        "import os, sys; from service.cli.gateway_guard import hold_runtime_dir; "
        f"hold_runtime_dir({str(tmp_path)!r}); "
        "os.execv(sys.executable, [sys.executable, '-c', "
        "'import sys; sys.stdout.write(\"held\\\\n\"); sys.stdout.flush(); sys.stdin.read()'])"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert holder.stdout.readline() == "held\n"
        from service.cli.gateway_guard import GuardError, hold_runtime_dir

        with pytest.raises(GuardError):
            hold_runtime_dir(str(tmp_path))
    finally:
        holder.communicate("", timeout=30)


# --- relative paths mean the caller's directory ---------------------------------------


def test_relative_paths_are_resolved_before_the_workers_start(tmp_path, monkeypatch) -> None:
    from service.cli.common import resolve_paths

    args = build_parser().parse_args(
        [
            "serve",
            "--registry-uri",
            "sqlite:///reg/mlflow.db",
            "--model",
            "m",
            "--model-dir",
            "models",
        ]
    )
    env = resolve_paths(serve_env(args, {"STAGESERVE_RUNTIME_DIR": "run"}), str(tmp_path))
    assert env["STAGESERVE_REGISTRY_URI"] == f"sqlite:///{tmp_path}/reg/mlflow.db"
    assert env["STAGESERVE_MODEL_DIR"] == f"{tmp_path}/models"
    assert env["STAGESERVE_RUNTIME_DIR"] == f"{tmp_path}/run"


def test_traffic_resolves_the_registry_the_same_way(tmp_path, monkeypatch) -> None:
    from service.cli.common import registry_uri

    monkeypatch.chdir(tmp_path)
    assert registry_uri("sqlite:///reg/mlflow.db") == f"sqlite:///{tmp_path}/reg/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "mlruns")
    monkeypatch.delenv("STAGESERVE_REGISTRY_URI", raising=False)
    assert registry_uri(None) == f"{tmp_path}/mlruns"


def test_demo_checks_the_port_before_seeding(tmp_path, capsys) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert main(["demo", "--dir", str(tmp_path / "reg"), "--port", str(port)]) == 1
    assert (
        capsys.readouterr().err == f"stageserve: port {port} is in use; pick another with --port\n"
    )
    assert not (tmp_path / "reg").exists()


@pytest.mark.parametrize("choice", ["keep", "unload"])
def test_on_empty_flag_becomes_environment(choice: str) -> None:
    args = build_parser().parse_args(["serve", "--on-empty", choice])
    assert serve_env(args, {}) == {"STAGESERVE_ON_EMPTY": choice}


def test_on_empty_flag_refuses_other_values(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--on-empty", "drop"])
    assert "--on-empty" in capsys.readouterr().err
