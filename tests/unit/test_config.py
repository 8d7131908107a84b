"""service.config.Settings.from_env, always with an explicit environment dict."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from registry_watcher.targets import DEFAULT_TARGETS, Target, TargetKind, parse_target
from service.config import (
    SETTINGS,
    ConfigError,
    Settings,
    registry_uri,
    split_list,
    trace_predictions,
    worker_count,
)

BASE = {"STAGESERVE_MODELS": "fraud"}


def settings(**env: str) -> Settings:
    return Settings.from_env({**BASE, **env})


def config_error(**env: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**BASE, **env})
    return info.value


def test_defaults() -> None:
    s = Settings.from_env(BASE)
    assert s.registry_uri is None
    assert s.models == ("fraud",)
    assert s.targets == DEFAULT_TARGETS
    assert s.targets == (parse_target("Production"), parse_target("Staging"))
    assert s.required_target == parse_target("Production")
    assert s.poll_interval_s == 2.0
    assert s.max_backoff_s == 60.0
    assert s.workers == 1
    assert s.max_body_bytes == 52_428_800
    assert s.smoke_test is True
    assert s.model_dir is None
    assert s.log_level == "INFO"


def test_defaults_match_the_settings_table() -> None:
    s = Settings.from_env(BASE)
    table = {setting.env: setting.default for setting in SETTINGS}
    assert float(table["STAGESERVE_POLL_INTERVAL"]) == s.poll_interval_s
    assert float(table["STAGESERVE_MAX_BACKOFF"]) == s.max_backoff_s
    assert int(table["STAGESERVE_WORKERS"]) == s.workers
    assert int(table["STAGESERVE_MAX_BODY_BYTES"]) == s.max_body_bytes
    assert table["STAGESERVE_LOG_LEVEL"] == s.log_level
    assert table["STAGESERVE_SMOKE_TEST"] == "true"
    assert int(table["STAGESERVE_MAX_BATCH"]) == s.max_batch
    assert int(table["STAGESERVE_KEEPALIVE_MAX_REQUESTS"]) == s.keepalive_max_requests
    assert table["STAGESERVE_TRACE_PREDICTIONS"] == "false" and not trace_predictions(BASE)
    assert int(table["STAGESERVE_SHADOW_QUEUE_BYTES"]) == s.shadow_queue_bytes
    assert tuple(t.text for t in s.targets) == tuple(table["STAGESERVE_TARGETS"].split(","))
    assert table["STAGESERVE_MODELS"] is None
    assert len(table) == len(SETTINGS)  # no variable listed twice
    assert all(setting.help for setting in SETTINGS)


def test_settings_table_names_every_variable_from_env_reads() -> None:
    source = (Path(__file__).parents[2] / "service" / "config.py").read_text()
    read = set(re.findall(r'_(?:get|float|int|bool)\(env, "([A-Z_]+)"', source))
    assert read
    assert read <= {setting.env for setting in SETTINGS}


def test_blank_values_mean_default() -> None:
    s = settings(STAGESERVE_POLL_INTERVAL="  ", STAGESERVE_TARGETS="", STAGESERVE_WORKERS="")
    assert s.poll_interval_s == 2.0
    assert s.targets == DEFAULT_TARGETS
    assert s.workers == 1


def test_values_are_stripped() -> None:
    s = settings(
        STAGESERVE_POLL_INTERVAL=" 0.5 ", STAGESERVE_WORKERS=" 4 ", STAGESERVE_MODEL_DIR=" /m "
    )
    assert s.poll_interval_s == 0.5
    assert s.workers == 4
    assert s.model_dir == "/m"


def test_explicit_values() -> None:
    s = settings(
        STAGESERVE_POLL_INTERVAL="0.25",
        STAGESERVE_MAX_BACKOFF="5",
        STAGESERVE_WORKERS="3",
        STAGESERVE_MAX_BODY_BYTES="1024",
        STAGESERVE_SMOKE_TEST="false",
        STAGESERVE_MODEL_DIR="/var/models",
        STAGESERVE_LOG_LEVEL="debug",
    )
    assert s.poll_interval_s == 0.25
    assert s.max_backoff_s == 5.0
    assert s.workers == 3
    assert s.max_body_bytes == 1024
    assert s.smoke_test is False
    assert s.model_dir == "/var/models"
    assert s.log_level == "DEBUG"


# --- models -------------------------------------------------------------------------


def test_models_list_is_split_stripped_and_deduplicated_in_order() -> None:
    s = Settings.from_env({"STAGESERVE_MODELS": " b, a ,b,, c ,a"})
    assert s.models == ("b", "a", "c")


def test_targets_by_model() -> None:
    s = Settings.from_env({"STAGESERVE_MODELS": "a,b", "STAGESERVE_TARGETS": "@champion"})
    assert s.targets_by_model() == {
        "a": (parse_target("@champion"),),
        "b": (parse_target("@champion"),),
    }


@pytest.mark.parametrize("models", [None, "", "  ", ",", " , ,"])
def test_no_models(models: str | None) -> None:
    env = {} if models is None else {"STAGESERVE_MODELS": models}
    with pytest.raises(ConfigError, match="STAGESERVE_MODELS"):
        Settings.from_env(env)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_split_list() -> None:
    assert split_list(None) == []
    assert split_list("") == []
    assert split_list(" a , b ,,") == ["a", "b"]


# --- numbers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STAGESERVE_POLL_INTERVAL", "fast"),
        ("STAGESERVE_POLL_INTERVAL", "1s"),
        ("STAGESERVE_MAX_BACKOFF", "one minute"),
        ("STAGESERVE_WORKERS", "two"),
        ("STAGESERVE_WORKERS", "1.5"),
        ("STAGESERVE_MAX_BODY_BYTES", "50MB"),
        ("STAGESERVE_MAX_BODY_BYTES", "1e6"),
    ],
)
def test_bad_numbers(name: str, value: str) -> None:
    error = config_error(**{name: value})
    assert name in str(error)
    assert repr(value) in str(error)
    assert "not a number" in str(error) or "not an integer" in str(error)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STAGESERVE_POLL_INTERVAL", "0"),
        ("STAGESERVE_POLL_INTERVAL", "0.01"),
        ("STAGESERVE_POLL_INTERVAL", "-1"),
        ("STAGESERVE_POLL_INTERVAL", "-inf"),
        ("STAGESERVE_MAX_BACKOFF", "0.05"),
        ("STAGESERVE_WORKERS", "0"),
        ("STAGESERVE_WORKERS", "-2"),
        ("STAGESERVE_MAX_BODY_BYTES", "0"),
    ],
)
def test_numbers_below_the_minimum(name: str, value: str) -> None:
    error = config_error(**{name: value})
    assert name in str(error)
    assert "must be at least" in str(error)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STAGESERVE_POLL_INTERVAL", "nan"),
        ("STAGESERVE_POLL_INTERVAL", "inf"),
        ("STAGESERVE_MAX_BACKOFF", "nan"),
    ],
)
def test_non_finite_numbers_are_rejected(name: str, value: str) -> None:
    # A NaN interval or cap makes the watcher poll in a hot loop (Event.wait(nan)
    # returns at once; min(nan, x) is nan); an infinite interval makes Event.wait
    # raise OverflowError in the watcher thread, which then dies.
    error = config_error(**{name: value})
    assert name in str(error)


def test_minimums_are_accepted() -> None:
    s = settings(
        STAGESERVE_POLL_INTERVAL="0.05",
        STAGESERVE_MAX_BACKOFF="0.1",
        STAGESERVE_WORKERS="1",
        STAGESERVE_MAX_BODY_BYTES="1",
    )
    assert (s.poll_interval_s, s.max_backoff_s, s.workers, s.max_body_bytes) == (0.05, 0.1, 1, 1)


# --- booleans -----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "True", "yes", "on", " On "])
def test_true_values(value: str) -> None:
    assert settings(STAGESERVE_SMOKE_TEST=value).smoke_test is True


@pytest.mark.parametrize("value", ["0", "false", "FALSE", "no", "off", "Off"])
def test_false_values(value: str) -> None:
    assert settings(STAGESERVE_SMOKE_TEST=value).smoke_test is False


@pytest.mark.parametrize("value", ["maybe", "2", "enabled", "t", "y"])
def test_bad_booleans(value: str) -> None:
    error = config_error(STAGESERVE_SMOKE_TEST=value)
    assert "STAGESERVE_SMOKE_TEST" in str(error)
    assert "not a boolean" in str(error)


# --- targets ------------------------------------------------------------------------


def test_targets_parsing() -> None:
    s = settings(STAGESERVE_TARGETS=" @champion , production,3 ")
    assert s.targets == (
        Target(TargetKind.ALIAS, "champion"),
        Target(TargetKind.STAGE, "Production"),
        Target(TargetKind.VERSION, "3"),
    )
    assert s.required_target == Target(TargetKind.ALIAS, "champion")


@pytest.mark.parametrize("targets", ["Production,Production", "Staging,staging", "@a,@a", "3,03"])
def test_duplicate_targets(targets: str) -> None:
    error = config_error(STAGESERVE_TARGETS=targets)
    assert str(error).startswith("STAGESERVE_TARGETS: ")
    assert "listed twice" in str(error)


@pytest.mark.parametrize("targets", ["Production,@", "0", "bad target", "models:/m/1"])
def test_invalid_targets(targets: str) -> None:
    error = config_error(STAGESERVE_TARGETS=targets)
    assert str(error).startswith("STAGESERVE_TARGETS: ")


def test_commas_only_targets_mean_default() -> None:
    assert settings(STAGESERVE_TARGETS=" , ,").targets == DEFAULT_TARGETS


# --- registry URI -------------------------------------------------------------------


def test_registry_uri_from_mlflow_tracking_uri() -> None:
    assert settings(MLFLOW_TRACKING_URI="http://mlflow:5000").registry_uri == "http://mlflow:5000"


def test_stageserve_registry_uri_takes_precedence() -> None:
    s = settings(
        MLFLOW_TRACKING_URI="http://tracking:5000",
        STAGESERVE_REGISTRY_URI="sqlite:///registry.db",
    )
    assert s.registry_uri == "sqlite:///registry.db"


def test_blank_stageserve_registry_uri_falls_back() -> None:
    s = settings(MLFLOW_TRACKING_URI="http://tracking:5000", STAGESERVE_REGISTRY_URI="  ")
    assert s.registry_uri == "http://tracking:5000"


def test_only_stageserve_registry_uri() -> None:
    assert settings(STAGESERVE_REGISTRY_URI=" databricks ").registry_uri == "databricks"


def test_from_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGESERVE_MODELS", "from-os-environ")
    monkeypatch.setenv("STAGESERVE_WORKERS", "2")
    s = Settings.from_env()
    assert s.models == ("from-os-environ",)
    assert s.workers == 2


def test_settings_are_immutable() -> None:
    s = Settings.from_env(BASE)
    with pytest.raises(AttributeError):
        s.workers = 5  # type: ignore[misc]


def test_a_stage_mlflow_cannot_have_is_refused_suggesting_an_alias() -> None:
    error = config_error(STAGESERVE_TARGETS="champion")
    assert "STAGESERVE_TARGETS" in str(error) and "'@champion'" in str(error)


def test_worker_ready_timeout() -> None:
    table = {setting.env: setting.default for setting in SETTINGS}
    assert float(table["STAGESERVE_WORKER_READY_TIMEOUT"]) == 300.0
    assert Settings.from_env(BASE).worker_ready_timeout_s == 300.0
    env = {**BASE, "STAGESERVE_WORKER_READY_TIMEOUT": "0"}
    assert Settings.from_env(env).worker_ready_timeout_s == 0.0
    with pytest.raises(ConfigError, match="STAGESERVE_WORKER_READY_TIMEOUT"):
        Settings.from_env({**BASE, "STAGESERVE_WORKER_READY_TIMEOUT": "-1"})


# --- fail static and load deadline (issue 9, items 1 and 10) ---------------------------


def test_on_empty_and_load_timeout_defaults_match_the_table() -> None:
    s = Settings.from_env(BASE)
    table = {setting.env: setting.default for setting in SETTINGS}
    assert s.on_empty == table["STAGESERVE_ON_EMPTY"] == "keep"
    assert s.load_timeout_s == float(table["STAGESERVE_LOAD_TIMEOUT"]) == 600.0


@pytest.mark.parametrize(("raw", "expected"), [("keep", "keep"), ("UNLOAD", "unload")])
def test_on_empty_values(raw: str, expected: str) -> None:
    assert settings(STAGESERVE_ON_EMPTY=raw).on_empty == expected


def test_on_empty_refuses_anything_else() -> None:
    message = str(config_error(STAGESERVE_ON_EMPTY="drop"))
    assert "STAGESERVE_ON_EMPTY" in message and "keep, unload" in message


def test_load_timeout_is_a_positive_number() -> None:
    assert settings(STAGESERVE_LOAD_TIMEOUT="30").load_timeout_s == 30.0
    assert "STAGESERVE_LOAD_TIMEOUT" in str(config_error(STAGESERVE_LOAD_TIMEOUT="0"))
    assert "STAGESERVE_LOAD_TIMEOUT" in str(config_error(STAGESERVE_LOAD_TIMEOUT="soon"))


def test_registry_uri_precedence_flag_then_stageserve_then_mlflow() -> None:
    env = {"STAGESERVE_REGISTRY_URI": "sqlite:///s.db", "MLFLOW_TRACKING_URI": "http://t:5000"}
    assert registry_uri(env, " http://flag:5000 ") == "http://flag:5000"
    assert registry_uri(env, None) == "sqlite:///s.db"
    assert registry_uri(env, "  ") == "sqlite:///s.db"  # a blank flag counts as unset
    assert registry_uri({"MLFLOW_TRACKING_URI": "http://t:5000"}) == "http://t:5000"
    assert registry_uri({"STAGESERVE_REGISTRY_URI": " ", "MLFLOW_TRACKING_URI": ""}) is None


def test_worker_count_is_the_rule_settings_use() -> None:
    assert worker_count({}) == 1 == Settings.from_env(BASE).workers
    assert worker_count({"STAGESERVE_WORKERS": " 4 "}) == 4
    for bad in ("0", "two", "1.5"):
        with pytest.raises(ConfigError, match="STAGESERVE_WORKERS"):
            worker_count({"STAGESERVE_WORKERS": bad})
