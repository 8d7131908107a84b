"""service/bento_service.py: which routes BentoML traces."""

from __future__ import annotations

import re

import pytest

from service.bento_service import PREDICTION_URL_PATTERN


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
