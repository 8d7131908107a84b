"""The PromQL of a fleet's experiment, and Prometheus's answers read as ``Sample``s.

Pure: the queries for one model over a window ending at a given time (what each
counter counted in it, summed over every replica and worker, by target and version; the latency
histogram's buckets by ``le``; the serving version; the policy's last change and its
control), and the parsing of ``GET /api/v1/query``'s JSON. What reads them over HTTP:
service/experiments/prometheus_reader.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.experiments import metric_names as names
from service.experiments.window import Sample


class BadAnswer(Exception):
    """Prometheus answered something that is not an instant vector; one line."""


@dataclass(frozen=True)
class Query:
    """One instant query; its result's series are samples of ``metric``."""

    metric: str
    promql: str


def selector(model: str) -> str:
    """``{model="..."}`` with the name escaped as a PromQL string."""
    escaped = model.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{{{names.MODEL}="{escaped}"}}'


def counted(metric: str, by: tuple[str, ...], model: str, seconds: int) -> Query:
    """What a counter counted in the window, summed ``by`` the labels, exactly.

    ``increase()`` extrapolates to the window's edges and takes a series' first scraped
    value as its start, so it neither gives whole counts nor counts what a new version
    answered before its first scrape. Each series' value now minus its value at the
    window's start (0 for a series that did not exist then) is exact; only a series
    that was reset in the window (a restart) falls back to ``increase()``.
    """
    series = f"{metric}{selector(model)}"
    window = f"[{seconds}s]"
    exact = f"({series} - ({series} offset {seconds}s or {series} * 0))"
    per_series = f"{exact} unless resets({series}{window}) > 0 or increase({series}{window})"
    return Query(metric, f"sum by ({', '.join(by)}) ({per_series})")


def window_queries(model: str, seconds: int) -> tuple[Query, ...]:
    """Every query of a model's window of ``seconds`` (at least 1) ending at the query time."""
    seconds = max(1, seconds)
    version = (names.TARGET, names.VERSION)
    return (
        counted(names.REQUESTS, (*version, names.OUTCOME), model, seconds),
        counted(names.LATENCY_BUCKETS, (*version, names.LE), model, seconds),
        counted(names.SHADOW, (names.TARGET, names.SHADOW_TARGET, names.OUTCOME), model, seconds),
        *(counted(metric, version, model, seconds) for metric in names.REWARD_SUMS),
        Query(
            names.LOADED_VERSION,
            f"max by ({names.TARGET}) ({names.LOADED_VERSION}{selector(model)})",
        ),
    )


def policy_change_query(model: str) -> Query:
    """When the fleet applied the policy in force, by control (the newest is in force)."""
    return Query(
        names.POLICY_CHANGED,
        f"max by ({names.CONTROL}) ({names.POLICY_CHANGED}{selector(model)})",
    )


def vector_samples(answer: Any, metric: str, model: str) -> list[Sample]:
    """The series of an instant query's JSON answer, as samples of ``metric`` for
    ``model``; BadAnswer when it is not a successful instant vector."""
    if not isinstance(answer, Mapping):
        raise BadAnswer("the answer is not a JSON object")
    if answer.get("status") != "success":
        raise BadAnswer(str(answer.get("error") or f"status {answer.get('status')!r}"))
    data = answer.get("data")
    if not isinstance(data, Mapping) or data.get("resultType") != "vector":
        kind = data.get("resultType") if isinstance(data, Mapping) else None
        raise BadAnswer(f"expected an instant vector, got {kind!r}")
    samples = []
    for series in data.get("result") or ():
        try:
            labels = {str(k): str(v) for k, v in series["metric"].items()}
            value = float(series["value"][1])
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            raise BadAnswer(f"a series that is not one: {str(series)[:80]}") from None
        if not math.isnan(value):
            samples.append(Sample(metric, {**labels, names.MODEL: model}, value))
    return samples


def policy_change(samples: list[Sample]) -> tuple[float, str] | None:
    """(time, control) of the newest policy change among the answer's series, if any."""
    newest = max(samples, key=lambda s: s.value, default=None)
    if newest is None or not newest.labels.get(names.CONTROL):
        return None
    return newest.value, newest.labels[names.CONTROL]
