"""One gateway's experiments: a baseline of a model's counters when a worker applies a
new traffic policy, and the results since then, as ``GET
/admin/models/{name}/experiment`` answers them.

The window starts at the baseline of the policy in force (the runtime folder's,
service/experiments/baseline_store.py, shared by the workers and kept across restarts)
or, without one, when this worker started, with every count since the gateway started.
The time a baseline was taken is published as a gauge, so that ``stageserve experiment
show --prometheus`` can start the fleet's window at the policy's last change too
(with the control, the policy's first target, as a label).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from registry_watcher.traffic_policy import TrafficPolicy
from service.experiments.baseline_store import BaselineStore
from service.experiments.results import ExperimentResult, experiment_result
from service.experiments.window import Sample, build_window
from service.experiments.window_starts import GATEWAY_START, POLICY_CHANGE

log = logging.getLogger("stageserve.experiments")


def policy_targets(policy: TrafficPolicy) -> tuple[str, ...]:
    """The policy's targets in its order, its shadow last: the rows' order."""
    texts = [target.text for target in policy.targets()]
    if policy.shadow is not None and policy.shadow.target.text not in texts:
        texts.append(policy.shadow.target.text)
    return tuple(texts)


def experiment_json(result: ExperimentResult, since: str, policy: TrafficPolicy) -> dict[str, Any]:
    """The results' JSON, with where the window starts and the policy it measures."""
    shown = result.to_json()
    shown["window"]["since"] = since
    shown["policy"] = policy.to_dict()
    return shown


class GatewayExperiments:
    def __init__(
        self,
        store: BaselineStore | None,
        read: Callable[[str], Sequence[Sample]],
        policy_of: Callable[[str], TrafficPolicy],
        started_at: float,
        published: Callable[[str, str, float], None] = lambda model, control, at: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._read = read  # the model's experiment series, summed over the workers
        self._policy_of = policy_of
        self._started_at = started_at
        self._published = published
        self._clock = clock
        self._applied: dict[str, str] = {}  # model -> the policy this worker has a baseline of

    @property
    def started_at(self) -> float:
        """When this gateway's counters started (its start)."""
        return self._started_at

    def samples(self, model: str) -> Sequence[Sample]:
        """The model's experiment series now, summed over the workers."""
        return self._read(model)

    def policies_applied(self, models: Iterable[str]) -> None:
        """This worker applied what the registry says of these models: for each whose
        policy is new to this worker, take its baseline unless one was taken already (by
        any worker, or before a restart). Cheap when nothing changed."""
        if self._store is None:
            return
        for model in models:
            in_force = self._policy_of(model)
            policy = in_force.to_json()
            if self._applied.get(model) == policy:
                continue
            try:
                baseline = self._store.record(model, policy, functools.partial(self._read, model))
            except OSError as exc:  # e.g. a runtime folder made unwritable: serving goes on
                log.warning("%s: could not record the experiment's baseline: %s", model, exc)
                continue
            self._applied[model] = policy
            self._published(model, in_force.targets()[0].text, baseline.taken_at)

    def result(self, model: str) -> dict[str, Any]:
        """The model's experiment since the policy in force was applied, as JSON."""
        policy, result, since = self.current(model)
        return experiment_json(result, since, policy)

    def current(self, model: str) -> tuple[TrafficPolicy, ExperimentResult, str]:
        """The policy in force, the results since it was applied, and where the window
        starts (POLICY_CHANGE, or GATEWAY_START without a baseline)."""
        policy = self._policy_of(model)
        end = self._read(model)
        end_time = self._clock()
        baseline = self._store.get(model, policy.to_json()) if self._store else None
        if baseline is not None:
            start, start_time, since = baseline.samples, baseline.taken_at, POLICY_CHANGE
        else:
            start, start_time, since = (), self._started_at, GATEWAY_START
        window = build_window(
            model,
            policy.targets()[0].text,
            end,
            start,
            start_time=start_time,
            end_time=end_time,
            order=policy_targets(policy),
        )
        return policy, experiment_result(window), since
