"""service.cli.common.absolute_uri / resolve_paths: relative paths mean the caller's
directory, remote URIs are left alone."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.cli.common import absolute_path, absolute_uri, resolve_paths

CWD = "/home/me/work"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sqlite:///demo-registry/mlflow.db", "sqlite:////home/me/work/demo-registry/mlflow.db"),
        ("sqlite:///mlflow.db", "sqlite:////home/me/work/mlflow.db"),
        ("sqlite:///../reg/m.db", "sqlite:////home/me/reg/m.db"),
        ("sqlite:///./m.db?mode=ro", "sqlite:////home/me/work/m.db?mode=ro"),
        ("sqlite+pysqlite:///m.db", "sqlite+pysqlite:////home/me/work/m.db"),
        ("sqlite:////abs/m.db", "sqlite:////abs/m.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("sqlite://", "sqlite://"),
        ("file:mlruns", "file:///home/me/work/mlruns"),
        ("file:./mlruns", "file:///home/me/work/mlruns"),
        ("file:///abs/mlruns", "file:///abs/mlruns"),
        ("mlruns", "/home/me/work/mlruns"),
        ("./mlruns", "/home/me/work/mlruns"),
        ("/abs/mlruns", "/abs/mlruns"),
        ("http://mlflow:5000", "http://mlflow:5000"),
        ("https://u:p@mlflow.example.com", "https://u:p@mlflow.example.com"),
        ("postgresql://u:p@db/mlflow", "postgresql://u:p@db/mlflow"),
        ("mysql+pymysql://u:p@db:3306/mlflow", "mysql+pymysql://u:p@db:3306/mlflow"),
        ("databricks", "databricks"),
        ("databricks://profile", "databricks://profile"),
        ("databricks-uc", "databricks-uc"),
    ],
)
def test_absolute_uri(uri: str, expected: str) -> None:
    assert absolute_uri(uri, CWD) == expected


names = st.text("abcdefghij-_.", min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))


@given(st.lists(names, min_size=1, max_size=4))
def test_resolving_is_idempotent_and_absolute(parts) -> None:
    relative = "/".join(parts)
    for uri in (f"sqlite:///{relative}", f"file:{relative}", relative):
        once = absolute_uri(uri, CWD)
        assert absolute_uri(once, "/elsewhere") == once  # made absolute exactly once
        assert "/home/me/work" in once or ".." in relative


def test_home_is_expanded_in_folders(monkeypatch) -> None:
    monkeypatch.setenv("HOME", "/home/me")
    assert absolute_path("~/models", CWD) == "/home/me/models"


def test_resolve_paths_touches_only_path_settings() -> None:
    env = {
        "MLFLOW_TRACKING_URI": "sqlite:///m.db",
        "STAGESERVE_MODEL_DIR": "models",
        "BENTOML_HOME": "bh",
        "STAGESERVE_MODELS": "a,b",
        "STAGESERVE_TARGETS": "Production",
        "STAGESERVE_RUNTIME_DIR": "",
    }
    assert resolve_paths(env, CWD) == {
        **env,
        "MLFLOW_TRACKING_URI": "sqlite:////home/me/work/m.db",
        "STAGESERVE_MODEL_DIR": "/home/me/work/models",
        "BENTOML_HOME": "/home/me/work/bh",
    }
