"""What the BentoML service is made of: its options (service/bentoml_options.py: which
routes BentoML traces, how many workers), the gateway slot, a worker's setup."""

from __future__ import annotations

import logging
import re

import pytest

from service.bentoml_options import PREDICTION_URL_PATTERN, service_options
from service.config import ConfigError
from service.gateway_slot import GatewaySlot
from service.process_setup import prepare_worker


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:3000/invocations",
        "http://gateway/models/fraud/invocations",
        "https://gw.example:443/models/team/fraud/invocations",
    ],
)
def test_prediction_routes_are_not_traced(url: str) -> None:
    assert re.search(PREDICTION_URL_PATTERN, url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:3000/ping",
        "http://127.0.0.1:3000/admin/models",
        "http://127.0.0.1:3000/admin/models/fraud/traffic",
        "http://127.0.0.1:3000/webhooks/mlflow",
        "http://127.0.0.1:3000/invocations/extra",
        "http://127.0.0.1:3000/readyz",
    ],
)
def test_other_routes_are_traced(url: str) -> None:
    assert not re.search(PREDICTION_URL_PATTERN, url)


def test_service_options_from_the_environment() -> None:
    assert service_options({}) == {
        "workers": 1,
        "logging": {"access": {"enabled": False}},
        "tracing": {"excluded_urls": [PREDICTION_URL_PATTERN]},
    }
    traced = service_options({"STAGESERVE_WORKERS": "3", "STAGESERVE_TRACE_PREDICTIONS": "yes"})
    assert traced["workers"] == 3 and "tracing" not in traced


def test_a_bad_worker_count_is_refused_as_settings_refuse_it() -> None:
    with pytest.raises(ConfigError, match="STAGESERVE_WORKERS='0' must be at least 1"):
        service_options({"STAGESERVE_WORKERS": "0"})


def test_the_gateway_slot_fails_loudly_until_filled() -> None:
    slot = GatewaySlot()
    with pytest.raises(RuntimeError, match="not started"):
        slot()
    gateway = object()
    slot.fill(gateway)  # type: ignore[arg-type]
    assert slot() is gateway


def test_a_worker_reads_its_settings_and_keeps_a_given_runtime_folder() -> None:
    logger = logging.getLogger("stageserve")
    level, root = logger.level, logging.getLogger()
    handlers = list(root.handlers)  # the worker takes over the process's logging
    env = {"STAGESERVE_MODELS": "m", "STAGESERVE_RUNTIME_DIR": "/run/gw", "STAGESERVE_WORKERS": "2"}
    try:
        settings = prepare_worker({**env, "STAGESERVE_LOG_LEVEL": "warning"})
        assert logger.level == logging.WARNING
    finally:
        logger.setLevel(level)  # setLevel also clears the loggers' cached levels
        root.handlers = handlers
    assert (settings.runtime_dir, settings.workers) == ("/run/gw", 2)
