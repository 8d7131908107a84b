"""``GET /openapi.json`` and ``GET /docs.json`` (the OpenAPI document of service/api/openapi.py)
and ``GET /``: a small page that lists the routes and links to the document.

Why ``/`` is a page and not the JSON: it is the address people open in a browser, where a
table of the routes reads better than raw JSON; tools fetch ``/openapi.json``. The page
is rendered from the document, so the two cannot disagree, and it is self-contained: no
script, no stylesheet or font from anywhere, and a Content-Security-Policy that forbids
loading anything (BentoML's page loaded Swagger UI and a third-party tag manager).
"""

from __future__ import annotations

import html
import importlib.metadata
import json
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.api.openapi import DOCUMENT_PATHS, INDEX_PATH, openapi_document, operations
from service.errors import JSON

# Nothing may load from anywhere; only the page's own <style> applies.
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'"

_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:60em}"
    "table{border-collapse:collapse}td,th{padding:.2em .8em;text-align:left}"
    "tr:nth-child(even){background:#f3f3f3}code{font-size:1.05em}"
)


def stageserve_version() -> str:
    """The installed distribution's version; a Bento runs from source, uninstalled."""
    try:
        return importlib.metadata.version("stageserve")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def index_page(document: Mapping[str, Any]) -> str:
    """The HTML of ``GET /``: the document's title, summary and operations."""
    info = document["info"]
    rows = []
    for method, path, operation in operations(document):
        shown = f"<code>{html.escape(path)}</code>"
        if method == "GET" and "{" not in path and path != INDEX_PATH:
            shown = f'<a href=".{html.escape(path)}">{shown}</a>'  # relative: works under a prefix
        rows.append(
            f"<tr><td>{method}</td><td>{shown}</td>"
            f"<td>{html.escape(operation.get('summary', ''))}</td></tr>"
        )
    links = " and ".join(f'<a href=".{p}"><code>{p}</code></a>' for p in DOCUMENT_PATHS)
    title = html.escape(f"{info['title']} {info['version']}")
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_STYLE}</style></head><body>\n"
        f"<h1>{title}</h1>\n<p>{html.escape(info['summary'])}</p>\n"
        f"<p>The OpenAPI {html.escape(document['openapi'])} description of this API: "
        f"{links}.</p>\n"
        "<table><tr><th>method</th><th>path</th><th>what it does</th></tr>\n"
        + "\n".join(rows)
        + "\n</table>\n</body></html>\n"
    )


def api_docs_routes(version: str | None = None) -> list[Route]:
    """The three routes; the document and the page are built once, here."""
    document = openapi_document(version or stageserve_version())
    document_bytes = json.dumps(document, indent=1).encode()
    page = index_page(document).encode()
    page_headers = {"Content-Security-Policy": CONTENT_SECURITY_POLICY}

    async def openapi_json(_: Request) -> Response:
        return Response(document_bytes, media_type=JSON)

    async def index(_: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=page_headers)

    return [
        Route(INDEX_PATH, index, methods=["GET"]),
        *(Route(path, openapi_json, methods=["GET"]) for path in DOCUMENT_PATHS),
    ]
