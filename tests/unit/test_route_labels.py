"""Route labels: any path a client sends maps to one of a fixed set of labels."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.api.app import create_app
from service.api.route_labels import OTHER, RouteLabels
from service.compat.metric_endpoint_labels import BENTOML_ROUTES

APP_ROUTES = [route.path for route in create_app(lambda: None).routes]  # type: ignore[arg-type,return-value]
LABELS = RouteLabels([*BENTOML_ROUTES, *APP_ROUTES])


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("/invocations", "/invocations"),
        ("/models/fraud/invocations", "/models/{name}/invocations"),
        ("/models/team/fraud/invocations", "/models/{name}/invocations"),
        ("/models/modèle-€/invocations", "/models/{name}/invocations"),
        ("/admin/models", "/admin/models"),
        ("/admin/models/fraud/traffic", "/admin/models/{name}/traffic"),
        ("/webhooks/mlflow", "/webhooks/mlflow"),
        ("/ping", "/ping"),
        ("/readyz", "/readyz"),
        ("/metrics", "/metrics"),
        ("/", "/"),
        ("/openapi.json", "/openapi.json"),
        ("/docs.json", "/docs.json"),
        ("/static_content/swagger.js", OTHER),  # BentoML's Swagger assets are not served
        ("/wp-login.php", OTHER),
        ("/invocations/", OTHER),
        ("/models/fraud", OTHER),
        ("", OTHER),
    ],
)
def test_paths_are_labelled_by_their_route(path: str, label: str) -> None:
    assert LABELS(path) == label


@given(st.text(max_size=200))
def test_any_path_gets_one_of_a_fixed_set_of_labels(path: str) -> None:
    assert LABELS(path) in LABELS.labels()
    assert LABELS("/" + path) in LABELS.labels()


@given(st.text(min_size=1, max_size=50).filter(lambda s: "{" not in s))
def test_a_model_name_in_the_path_is_never_a_label(name: str) -> None:
    assert LABELS(f"/models/{name}/invocations") == "/models/{name}/invocations"


def test_every_route_of_the_app_is_its_own_label() -> None:
    for template in APP_ROUTES:
        assert LABELS(template.replace(":path", "").replace("{name}", "x")) != OTHER, template


def test_templates_with_two_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        RouteLabels(["/a/{x}/b/{y}"])
