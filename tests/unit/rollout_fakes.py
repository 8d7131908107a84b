"""An in-memory registry and results source for the controller's tests: the registry
keeps tags, stages and aliases as MLflow does (a transition archiving the versions in
that stage); the results follow the traffic policy tag like a gateway that applied it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from registry_watcher.traffic_policy import POLICY_TAG, TrafficPolicy, parse_policy
from service.experiments.results import ExperimentResult
from service.rollouts.registry_effects import VersionRecord
from service.rollouts.results_source import Measured, Unmeasured
from tests.unit.rollout_results import CANDIDATE, CONTROL, step_result


class MemoryRegistry:
    def __init__(self, model: str = "churn", versions: Mapping[int, str] | None = None) -> None:
        self.tags: dict[str, dict[str, str]] = {model: {}}
        self.stages: dict[tuple[str, int], str] = {
            (model, v): stage for v, stage in (versions or {3: "Production", 7: "Staging"}).items()
        }
        self.version_tags: dict[tuple[str, int], dict[str, str]] = {}
        self.alias_map: dict[str, dict[str, int]] = {model: {}}
        self.calls: list[str] = []  # writes, in order: "tag:<key>", "transition", "alias"
        self.fail: Exception | None = None
        self.before_write: Callable[[str], None] | None = None

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail

    def model_tags(self, model: str) -> Mapping[str, str]:
        self._check()
        return dict(self.tags[model])

    def set_model_tag(self, model: str, key: str, value: str) -> None:
        self._check()
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            hook(key)
        self.calls.append(f"tag:{key}")
        self.tags[model][key] = value

    def aliases(self, model: str) -> Mapping[str, int]:
        return dict(self.alias_map[model])

    def version(self, model: str, version: int) -> VersionRecord:
        self._check()
        return VersionRecord(
            self.stages[(model, version)], dict(self.version_tags.get((model, version), {}))
        )

    def set_version_tag(self, model: str, version: int, key: str, value: str) -> None:
        self.calls.append(f"version_tag:{key}")
        self.version_tags.setdefault((model, version), {})[key] = value

    def transition(self, model: str, version: int, stage: str) -> None:
        self.calls.append("transition")
        for key, was in self.stages.items():
            if key[0] == model and was == stage:
                self.stages[key] = "Archived"
        self.stages[(model, version)] = stage

    def set_alias(self, model: str, alias: str, version: int) -> None:
        self.calls.append("alias")
        self.alias_map[model][alias] = version


class PolicyResults:
    """Results as a gateway that applied the registry's policy would measure them: the
    control's requests vanish at 100 %; ``Unmeasured`` while the tag is not the step's."""

    def __init__(
        self,
        registry: MemoryRegistry,
        candidate_errors: int = 0,
        candidate_seconds: float = 0.08,
        control: str = CONTROL,
        candidate: str = CANDIDATE,
    ) -> None:
        self.control, self.candidate = control, candidate
        self.registry = registry
        self.candidate_errors = candidate_errors
        self.candidate_seconds = candidate_seconds
        self.asked = 0

    def result(self, model: str, policy: TrafficPolicy, since: float) -> Measured:
        self.asked += 1
        stored = self.registry.tags[model].get(POLICY_TAG)
        if stored is None or parse_policy(stored).to_json() != policy.to_json():
            return Unmeasured("the step's policy is not applied yet")
        control_share = policy.weights[0][1]
        return self.make(control_requests=1000 if control_share > 0 else 0)

    def make(self, control_requests: int) -> ExperimentResult:
        result = step_result(
            control_requests=control_requests,
            candidate_errors=self.candidate_errors,
            candidate_seconds=self.candidate_seconds,
        )
        names = {CONTROL: self.control, CANDIDATE: self.candidate}
        rows = tuple(dataclasses.replace(row, target=names[row.target]) for row in result.targets)
        return dataclasses.replace(result, control=self.control, targets=rows)
