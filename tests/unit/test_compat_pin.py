"""The BentoML fixes (service/compat/) against the BentoML installed: every fix targets
this very version and the pin in pyproject.toml, and what each patches still looks the
way the fix expects. A BentoML upgrade fails here first, so each fix gets reviewed."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import pkgutil
import re
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import service.compat
from service.compat import bentoml_fixes, docs_routes, metric_endpoint_labels, timeout_middleware

REPO_ROOT = Path(__file__).resolve().parents[2]
bentoml_fixes.install()


def pinned_bentoml() -> str:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    pins = [re.fullmatch(r"bentoml==(\S+)", dep) for dep in project["dependencies"]]
    (pin,) = [m.group(1) for m in pins if m]
    return pin


def original(patched: Any) -> Any:
    """BentoML's function under our patch."""
    return patched.__stageserve_original__


def parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


# Every module of the package but the installer is a fix.
FIXES = [
    importlib.import_module(f"service.compat.{m.name}")
    for m in pkgutil.iter_modules(service.compat.__path__)
    if m.name != "bentoml_fixes"
]


def test_the_installer_installs_every_fix() -> None:
    source = inspect.getsource(bentoml_fixes.install)
    assert len(FIXES) >= 3  # the package was found
    for fix in FIXES:
        assert f"{fix.__name__.rsplit('.', 1)[1]}.install(" in source


@pytest.mark.parametrize("fix", FIXES, ids=lambda fix: fix.__name__)
def test_each_fix_targets_the_installed_and_pinned_bentoml(fix: ModuleType) -> None:
    assert fix.TARGET_BENTOML == importlib.metadata.version("bentoml") == pinned_bentoml()
    assert f"BentoML {fix.TARGET_BENTOML} does wrong" in (fix.__doc__ or "")


def test_timeout_middleware_still_leaks_the_timer_it_replaces() -> None:
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    assert parameters(TimeoutMiddleware.__init__) == ["self", "app", "timeout"]
    assert "self.app = app" in inspect.getsource(TimeoutMiddleware.__init__)
    assert "self.timeout = timeout" in inspect.getsource(TimeoutMiddleware.__init__)
    bentoml_call = original(timeout_middleware.timeout_middleware_call)
    assert parameters(bentoml_call) == ["self", "scope", "receive", "send"]
    assert "call_later(self.timeout" in inspect.getsource(bentoml_call)  # never cancelled


def test_bentoml_still_builds_its_app_in_the_wrapped_factory_call() -> None:
    from bentoml._internal.server.base_app import BaseAppFactory

    factory_call = original(BaseAppFactory.__call__)
    assert parameters(factory_call) == ["self"]
    assert "return Starlette(" in inspect.getsource(factory_call)


@pytest.mark.parametrize(
    "middleware", ["HTTPTrafficMetricsMiddleware", "RunnerTrafficMetricsMiddleware"]
)
def test_bentoml_metrics_still_label_the_raw_endpoint(middleware: str) -> None:
    from bentoml._internal.server.http import instruments

    setup = original(getattr(instruments, middleware)._setup)
    assert parameters(setup) == ["self", "metrics_client", "duration_buckets"]
    assert '"endpoint",' in inspect.getsource(setup)
    raw_path = 'endpoint = scope["path"]'
    assert raw_path in inspect.getsource(getattr(instruments, middleware).__call__)


def test_bentoml_system_routes_are_known_to_the_route_labels() -> None:
    from bentoml._internal.server.base_app import BaseAppFactory

    class Factory(BaseAppFactory):
        name = "test"

        @property
        def routes(self) -> list:
            return []

    system = [route.path for route in Factory().get_system_routes()]
    assert set(system) <= set(metric_endpoint_labels.BENTOML_ROUTES)


def test_bentoml_still_names_the_docs_routes_the_fix_removes() -> None:
    from _bentoml_impl.server.app import ServiceAppFactory

    factory_call = original(ServiceAppFactory.__call__)
    assert parameters(factory_call) == ["self"]
    source = inspect.getsource(factory_call)
    for name in docs_routes.REMOVED_ROUTE_NAMES:
        assert f'name="{name}"' in source, name
