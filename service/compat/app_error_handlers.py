"""JSON error answers from BentoML's own app.

What BentoML 1.4.39 does wrong: the outer Starlette app BentoML builds around ours
(``BaseAppFactory.__call__``) answers unknown paths, wrong methods, a not-ready
``/readyz`` and uncaught exceptions in plain text, where every other stageserve error is
MLflow's ``{"error_code", "message"}`` JSON.

What the fix does: it wraps ``BaseAppFactory.__call__`` so that the app it returns gets
the same exception handlers as ours (service/api/error_pages.py).

Targets BentoML 1.4.39 (TARGET_BENTOML; tests/unit/test_compat_pin.py fails when the pin
moves).
"""

from __future__ import annotations

from typing import Any

from service.api import error_pages

TARGET_BENTOML = "1.4.39"


def install() -> None:
    """Idempotent: a second install wraps BentoML's original again, not our wrapper."""
    from bentoml._internal.server.base_app import BaseAppFactory

    original = getattr(BaseAppFactory.__call__, "__stageserve_original__", BaseAppFactory.__call__)

    def __call__(self: Any) -> Any:
        app = original(self)
        for key, handler in error_pages.handlers().items():
            app.add_exception_handler(key, handler)
        return app

    # mypy knows no attributes on functions: this one marks BentoML's original.
    __call__.__stageserve_original__ = original  # type: ignore[attr-defined]
    # mypy refuses assigning to a method: that assignment is the patch.
    BaseAppFactory.__call__ = __call__  # type: ignore[method-assign]
