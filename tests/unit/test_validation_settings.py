"""Writing validation back is off unless asked: STAGESERVE_WRITE_VALIDATION and its flag,
and the gateway builds the writer only then."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from service.cli.parser import build_parser
from service.cli.serve_options import serve_env
from service.config import ConfigError, Settings
from service.gateway import Gateway
from service.lifecycle.validation_writer import ValidationWriter

BASE = {"STAGESERVE_MODELS": "fraud", "STAGESERVE_TARGETS": "Production"}


def test_off_by_default_and_on_when_set() -> None:
    assert Settings.from_env(BASE).write_validation is False
    assert Settings.from_env({**BASE, "STAGESERVE_WRITE_VALIDATION": "true"}).write_validation
    with pytest.raises(ConfigError, match="STAGESERVE_WRITE_VALIDATION"):
        Settings.from_env({**BASE, "STAGESERVE_WRITE_VALIDATION": "sometimes"})


def test_the_flag_sets_the_variable_and_only_serve_has_it() -> None:
    args = build_parser().parse_args(["serve", "--write-validation"])
    assert serve_env(args, {})["STAGESERVE_WRITE_VALIDATION"] == "true"
    without = build_parser().parse_args(["serve"])
    assert "STAGESERVE_WRITE_VALIDATION" not in serve_env(without, {})


def gateway(**env: str) -> Gateway:
    settings = Settings.from_env({**BASE, **env})
    return Gateway(settings, registry=SimpleNamespace(), loader=SimpleNamespace())  # type: ignore[arg-type]


def test_the_gateway_builds_a_writer_only_when_asked() -> None:
    assert gateway().validation is None
    assert isinstance(gateway(STAGESERVE_WRITE_VALIDATION="true").validation, ValidationWriter)
