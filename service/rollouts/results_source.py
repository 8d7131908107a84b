"""Where a controller's tick gets the experiment's results for a model's current step.

Two sources, one ``ResultsSource`` protocol: ``GatewayResults`` (the embedded
controller: this gateway's own experiment, as ``GET /admin/models/{name}/experiment``
computes it, summed over its workers) and ``FleetResults`` (``stageserve controller``:
the fleet's, from Prometheus). Both measure from the newest traffic policy change, which
every step's policy write causes, and answer ``Unmeasured`` until the gateways have
applied the step's policy: results from before it belong to the previous step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from registry_watcher.traffic_policy import TrafficPolicy
from service.experiments.gateway_experiments import GatewayExperiments
from service.experiments.prometheus_reader import FleetUnreadable, PrometheusReader
from service.experiments.results import ExperimentResult
from service.experiments.window_starts import POLICY_CHANGE


@dataclass(frozen=True)
class Unmeasured:
    """No results for this step yet, and why (the controller holds)."""

    reason: str


Measured = ExperimentResult | Unmeasured


class ResultsSource(Protocol):
    def result(self, model: str, policy: TrafficPolicy, since: float) -> Measured:
        """The results under ``policy`` (the step's), over a window that starts at its
        application, no earlier than ``since`` (the step's start)."""
        ...


class GatewayResults:
    """This gateway's experiment (the worker running the embedded controller)."""

    def __init__(self, experiments: GatewayExperiments) -> None:
        self._experiments = experiments

    def result(self, model: str, policy: TrafficPolicy, since: float) -> Measured:
        in_force, result, window_since = self._experiments.current(model)
        if in_force.to_json() != policy.to_json():
            return Unmeasured(f"the gateway follows {in_force.to_json()}, not the step's policy")
        if window_since != POLICY_CHANGE:
            return Unmeasured("no baseline of the step's policy yet")
        return result


class FleetResults:
    """The fleet's experiment, from Prometheus's HTTP API."""

    def __init__(self, reader: PrometheusReader, clock: Callable[[], float] = time.time) -> None:
        self._reader = reader
        self._clock = clock

    def result(self, model: str, policy: TrafficPolicy, since: float) -> Measured:
        try:
            result = self._reader.result(model, None, self._clock())
        except FleetUnreadable as exc:
            return Unmeasured(str(exc))
        if result.start is None or result.start < since:
            return Unmeasured("no gateway has applied the step's policy yet (per Prometheus)")
        return result
