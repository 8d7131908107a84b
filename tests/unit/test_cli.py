"""The CLI's argument handling and its refusals, without starting a server."""

from __future__ import annotations

import pytest

from service.cli import build_parser, main, serve_env


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
    assert "STAGESERVE_TARGETS" in capsys.readouterr().err


def test_a_command_is_required() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([])


def test_runtime_folder_is_stable_per_user_and_port() -> None:
    from service.cli import default_runtime_dir

    assert default_runtime_dir(3000) == default_runtime_dir(3000)  # a restart reuses it
    assert default_runtime_dir(3000) != default_runtime_dir(3001)


@pytest.mark.parametrize("choice", ["keep", "unload"])
def test_on_empty_flag_becomes_environment(choice: str) -> None:
    args = build_parser().parse_args(["serve", "--on-empty", choice])
    assert serve_env(args, {}) == {"STAGESERVE_ON_EMPTY": choice}


def test_on_empty_flag_refuses_other_values(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--on-empty", "drop"])
    assert "--on-empty" in capsys.readouterr().err
