"""A Metrics whose every series is a plain recorder, for unit tests of the parts that
write metrics (no Prometheus registry shared between tests)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import fields
from typing import Any

from service.ops.metrics import Metrics


class Series:
    def __init__(self) -> None:
        self.value = 0.0
        self.observed: list[float] = []

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = value

    def observe(self, value: float) -> None:
        self.observed.append(value)


class Metric(Series):
    """A metric with or without labels: ``labels(...)`` gives one series per label set."""

    def __init__(self) -> None:
        super().__init__()
        self.series: defaultdict[tuple[str, ...], Series] = defaultdict(Series)

    def labels(self, *values: Any) -> Series:
        return self.series[tuple(str(v) for v in values)]

    def of(self, *values: str) -> float:
        return self.series[values].value


def fake_metrics() -> Metrics:
    return Metrics(**{f.name: Metric() for f in fields(Metrics)})
