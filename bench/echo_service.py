"""The framework ceiling: a BentoML 1.4 service that parses the same request body as the
model servers and answers a constant, so its requests/s is what BentoML itself allows on
this machine with this many workers.

Served as ``python -m bentoml serve bench.echo_service:Echo`` from the repository root.
BentoML reads ``workers`` when it imports this module, hence ``BENCH_ECHO_WORKERS``.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml


def _workers() -> int:
    try:
        return max(1, int(os.environ.get("BENCH_ECHO_WORKERS", "1")))
    except ValueError:
        return 1


@bentoml.service(
    name="bench-echo",
    workers=_workers(),
    logging={"access": {"enabled": False}},
)
class Echo:
    """Answers ``POST /invocations`` with one zero per row of ``dataframe_split``."""

    # BentoML maps the top-level JSON keys of the body to the API's arguments, so the
    # MLflow body {"dataframe_split": {...}} arrives as one dict argument, parsed.
    @bentoml.api(route="/invocations")
    async def invocations(self, dataframe_split: dict[str, Any]) -> dict[str, Any]:
        return {"predictions": [0.0] * len(dataframe_split.get("data", ()))}
