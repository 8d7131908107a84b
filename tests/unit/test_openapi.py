"""The OpenAPI document: a valid OpenAPI 3.1 description of exactly the routes the served
app has (BentoML's outer app and stageserve's mounted one, as a worker builds them), and
the page at / that lists it without loading anything from anywhere."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from registry_watcher.traffic_policy import MAX_TARGETS, policy_from_dict
from service.api.api_docs import CONTENT_SECURITY_POLICY, api_docs_routes, index_page
from service.api.openapi import DOCUMENT_PATHS, openapi_document, operations

DOCUMENT = openapi_document("1.2.3")


def served_routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(METHOD, path template) of every route an app answers; HEAD, which Starlette adds
    to every GET route, left out. A route of another kind (a static folder, a proxy) is
    a failure: it would serve something the document cannot describe."""
    for route in routes:
        if isinstance(route, Route):
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", prefix + route.path)
            for method in route.methods or ():
                if method != "HEAD":
                    yield method, path
        elif isinstance(route, Mount) and isinstance(route.app, Starlette):
            yield from served_routes(route.app.routes, prefix + route.path)
        else:
            raise AssertionError(f"a route the document cannot describe: {route!r}")


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(DOCUMENT)  # raises on any error, unresolved $refs included
    assert DOCUMENT["openapi"] == "3.1.0"
    assert DOCUMENT["info"]["version"] == "1.2.3"


def test_the_document_describes_exactly_the_routes_a_worker_serves() -> None:
    # What `bentoml serve` builds in each worker: BentoML's app around stageserve's.
    from service.bento_service import StageServe

    app = StageServe.to_asgi(is_main=True)
    served = set(served_routes(app.routes))
    documented = {(method, path) for method, path, _ in operations(DOCUMENT)}
    assert ("POST", "/models/{name}/invocations") in served  # the mount was looked into
    assert ("GET", "/livez") in served  # BentoML's own routes were collected
    assert served == documented


def test_every_operation_says_what_it_does_and_what_it_answers() -> None:
    for method, path, operation in operations(DOCUMENT):
        assert operation.get("summary"), (method, path)
        assert any(status.startswith("2") for status in operation["responses"]), (method, path)


def schema(name: str) -> OAS31Validator:
    root = {**DOCUMENT, "$ref": f"#/components/schemas/{name}"}
    return OAS31Validator(root)


def test_the_policy_schema_is_the_policy_rules() -> None:
    policy = schema("TrafficPolicy")
    (example,) = DOCUMENT["components"]["schemas"]["TrafficPolicy"]["examples"]
    assert policy.is_valid(example)
    policy_from_dict(example)  # the gateway accepts it too
    too_many = {"weights": {str(v): 1 for v in range(1, MAX_TARGETS + 2)}}
    refused = [
        {"weights": {"Production": 1}, "typo": True},
        {"weights": {}},
        {"weights": {"Production": -1}},
        {"weights": {"Production": 1}, "shadow": {"target": "Staging", "percent": 0}},
        {"weights": {"Production": 1}, "shadow": {"target": "Staging", "percent": 101}},
        too_many,
    ]
    for document in refused:
        assert not policy.is_valid(document), document
        with pytest.raises(ValueError):
            policy_from_dict(document)


def test_the_error_schema_matches_what_the_gateway_answers() -> None:
    from service.errors import ServingError

    body = json.loads(ServingError(400, "BAD_REQUEST", "no").body())
    assert schema("Error").is_valid(body)
    assert not schema("Error").is_valid({"error": "no"})  # BentoML's own format


class _Resources(HTMLParser):
    """Every tag and every attribute that could load something."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [value or "" for name, value in attrs if name in ("src", "href", "action")]


def test_the_index_page_lists_every_operation_and_loads_nothing() -> None:
    page = index_page(DOCUMENT)
    parsed = _Resources()
    parsed.feed(page)
    assert not {"script", "iframe", "img", "link", "object", "embed"} & set(parsed.tags)
    assert parsed.urls and all(url.startswith("./") for url in parsed.urls), parsed.urls
    for path in DOCUMENT_PATHS:
        assert f"./{path.lstrip('/')}" in parsed.urls
    listed = list(operations(DOCUMENT))
    assert page.count("<tr><td>") == len(listed)
    for method, path, _ in listed:
        assert f"<code>{path}</code>" in page, (method, path)
    assert '<a href="./admin/models"><code>/admin/models</code></a>' in page


def test_the_routes_answer_the_document_and_the_page() -> None:
    client = TestClient(Starlette(routes=api_docs_routes("9.9")))
    for path in DOCUMENT_PATHS:
        answer = client.get(path)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == openapi_document("9.9")
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "<title>stageserve 9.9</title>" in page.text
