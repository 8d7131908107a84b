"""A fleet's experiment, read from Prometheus's HTTP API (``GET /api/v1/query``).

Every gateway of the fleet is scraped by Prometheus, so the sums of their counters'
increases over the window are the fleet's counts, rewards and latency buckets; the
same window layer and statistics as one gateway's turn them into the same results.
The window ends now and starts at ``since`` or, by default, when the policy in force
was first applied (the newest ``stageserve_traffic_policy_changed_timestamp_seconds``
of the model, which also names the control). Every failure is a ``FleetUnreadable``
with one line for the user.
"""

from __future__ import annotations

import math
from typing import Any

from service.experiments import metric_names as names
from service.experiments.promql import (
    BadAnswer,
    Query,
    policy_change,
    policy_change_query,
    vector_samples,
    window_queries,
)
from service.experiments.results import ExperimentResult, experiment_result
from service.experiments.window import Sample, build_window
from service.experiments.window_starts import GIVEN, POLICY_CHANGE

QUERY_PATH = "/api/v1/query"


class FleetUnreadable(Exception):
    """No usable answer from Prometheus; one line, meant for the user."""


class PrometheusReader:
    def __init__(self, url: str, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def samples(self, query: Query, model: str, at: float) -> list[Sample]:
        """One instant query's series at time ``at``."""
        import httpx  # only when asked: the other subcommands do not need it

        try:
            answer = httpx.get(
                self.url + QUERY_PATH,
                params={"query": query.promql, "time": f"{at:.3f}"},
                timeout=self.timeout,
            )
        except httpx.TimeoutException:
            raise FleetUnreadable(
                f"no answer from Prometheus at {self.url} within {self.timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise FleetUnreadable(f"no Prometheus answers at {self.url} ({exc})") from None
        try:
            body: Any = answer.json()
        except ValueError:
            raise FleetUnreadable(
                f"{self.url}{QUERY_PATH} answered HTTP {answer.status_code}, not JSON: "
                "is it Prometheus?"
            ) from None
        try:
            return vector_samples(body, query.metric, model)
        except BadAnswer as exc:
            raise FleetUnreadable(
                f"Prometheus at {self.url} refused `{query.promql}`: {exc}"
            ) from None

    def experiment(self, model: str, since: float | None, now: float) -> dict[str, Any]:
        """The fleet's results for ``model`` from ``since`` (default: the policy's last
        change) to ``now``, as the gateway's endpoint answers them."""
        answer = self.result(model, since, now).to_json()
        answer["window"]["since"] = POLICY_CHANGE if since is None else GIVEN
        return answer

    def result(self, model: str, since: float | None, now: float) -> ExperimentResult:
        """``experiment``'s results; ``.start`` is where the window starts."""
        change = policy_change(self.samples(policy_change_query(model), model, now))
        if change is None:
            raise FleetUnreadable(
                f"Prometheus at {self.url} has no {names.POLICY_CHANGED} for model {model!r}: "
                "is a gateway serving it scraped?"
            )
        changed_at, control = change
        start = changed_at if since is None else since
        if start >= now:
            raise FleetUnreadable("the window's start is not in the past: nothing to read")
        seconds = math.ceil(now - start)
        samples = [
            sample
            for query in window_queries(model, seconds)
            for sample in self.samples(query, model, now)
        ]
        if not any(s.name == names.REQUESTS for s in samples):
            raise FleetUnreadable(
                f"Prometheus at {self.url} has no requests of model {model!r} in the window"
            )
        window = build_window(
            model, control, samples, start_time=start, end_time=now, order=(control,)
        )
        return experiment_result(window)
