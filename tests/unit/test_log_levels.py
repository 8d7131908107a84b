"""service.logs.log_levels, --log-level and the log settings: which logger logs what."""

from __future__ import annotations

import argparse
import logging

import pytest

from service.cli.flags import log_level
from service.cli.parser import build_parser
from service.cli.serve_options import serve_env
from service.config import ConfigError, Settings
from service.logs.log_levels import LIBRARIES, logger_levels


def test_info_sets_stageserve_only_and_keeps_uvicorns_access_log_off() -> None:
    levels = logger_levels("INFO")
    assert levels["stageserve"] == logging.INFO
    assert levels["uvicorn.access"] == logging.WARNING
    assert levels["mlflow"] == logging.INFO  # MLflow's own default
    assert not set(levels) & {"", "bentoml", "circus", "uvicorn.error"}


def test_warning_and_error_quiet_stageserve_but_never_the_libraries() -> None:
    for level in ("WARNING", "ERROR", "CRITICAL"):
        levels = logger_levels(level)
        assert levels["stageserve"] == logging.getLevelName(level)
        assert "" not in levels and "bentoml" not in levels  # their defaults stand


def test_debug_reaches_every_library() -> None:
    levels = logger_levels("DEBUG")
    assert all(levels[name] == logging.DEBUG for name in LIBRARIES)
    assert levels["uvicorn.access"] == logging.WARNING  # stageserve's access log replaces it


def test_the_access_log_logs_whatever_the_level() -> None:
    assert logger_levels("ERROR", access_log=True)["stageserve.access"] == logging.INFO
    assert logger_levels("DEBUG", access_log=True)["stageserve.access"] == logging.DEBUG
    assert "stageserve.access" not in logger_levels("ERROR")


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="not a log level"):
        logger_levels("LOUD")


def test_the_flag_takes_any_case_and_refuses_a_typo() -> None:
    assert log_level("debug") == "DEBUG"
    with pytest.raises(argparse.ArgumentTypeError, match="'verbose' is not a log level"):
        log_level("verbose")


def test_the_flags_become_the_environment_for_serve_and_demo() -> None:
    for command in (["serve"], ["demo"]):
        args = build_parser().parse_args(
            [*command, "--log-format", "json", "--log-level", "warning", "--access-log"]
        )
        env = serve_env(args, {})
        assert env["STAGESERVE_LOG_FORMAT"] == "json"
        assert env["STAGESERVE_LOG_LEVEL"] == "WARNING"
        assert env["STAGESERVE_ACCESS_LOG"] == "true"
    assert "STAGESERVE_ACCESS_LOG" not in serve_env(build_parser().parse_args(["serve"]), {})


def test_a_bad_flag_value_is_refused_naming_the_flag(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--log-level", "loud"])
    assert "argument --log-level: 'loud' is not a log level" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--log-format", "xml"])
    assert "argument --log-format: invalid choice: 'xml'" in capsys.readouterr().err


def test_settings_read_and_validate_the_log_variables() -> None:
    base = {"STAGESERVE_MODELS": "m"}
    s = Settings.from_env(base)
    assert (s.log_format, s.log_level, s.access_log) == ("text", "INFO", False)
    s = Settings.from_env(
        {**base, "STAGESERVE_LOG_FORMAT": "JSON", "STAGESERVE_ACCESS_LOG": "true"}
    )
    assert (s.log_format, s.access_log) == ("json", True)
    with pytest.raises(ConfigError, match="STAGESERVE_LOG_LEVEL='loud' must be one of"):
        Settings.from_env({**base, "STAGESERVE_LOG_LEVEL": "loud"})
    with pytest.raises(ConfigError, match="STAGESERVE_LOG_FORMAT='xml' must be one of"):
        Settings.from_env({**base, "STAGESERVE_LOG_FORMAT": "xml"})
