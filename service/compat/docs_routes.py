"""BentoML's index page and API description routes, removed.

What BentoML 1.4.39 does wrong: ``ServiceAppFactory.__call__`` adds to the service's app
a Swagger UI page at ``/`` (which loads a third-party tag manager), its assets under
``/static_content`` (or ``/assets``), ``/docs.json`` and ``/schema.json``. Both documents
describe BentoML's own routes only (stageserve's are a mounted Starlette app BentoML
cannot see into), so a reader learns nothing true about the API from them.

What the fix does: it wraps ``ServiceAppFactory.__call__`` so that the app it returns
has none of those routes. ``/`` and ``/docs.json`` are then answered by stageserve's app
(service/api/api_docs.py), and every route left is one its OpenAPI document describes.

Targets BentoML 1.4.39 (TARGET_BENTOML; tests/unit/test_compat_pin.py fails when the pin
moves).
"""

from __future__ import annotations

from typing import Any

TARGET_BENTOML = "1.4.39"

# The names BentoML gives those routes.
REMOVED_ROUTE_NAMES = frozenset({"index", "openapi-spec", "static_content", "assets", "schema"})


def remove_docs_routes(app: Any) -> None:
    """Drop BentoML's page and description routes from a built Starlette app."""
    app.router.routes = [
        route
        for route in app.router.routes
        if getattr(route, "name", None) not in REMOVED_ROUTE_NAMES
    ]


def install() -> None:
    """Idempotent: a second install wraps BentoML's original again, not our wrapper."""
    from _bentoml_impl.server.app import ServiceAppFactory

    original = getattr(
        ServiceAppFactory.__call__, "__stageserve_original__", ServiceAppFactory.__call__
    )

    def __call__(self: Any) -> Any:
        app = original(self)
        remove_docs_routes(app)
        return app

    # mypy knows no attributes on functions: this one marks BentoML's original.
    __call__.__stageserve_original__ = original  # type: ignore[attr-defined]
    ServiceAppFactory.__call__ = __call__
