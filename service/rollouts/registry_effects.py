"""What a rollout's stored state asks of the registry, done idempotently: the traffic
policy tag, the promotion, and the decision tags on the candidate version.

Everything is derived from the STORED state (never from a move in hand), so a
controller that crashed between its keyed write and these effects, or a second
controller reading the same state, converges on the same registry; each write happens
only when the registry differs.

Order when promoting, so that no request fails (service/traffic/router.py,
service/lifecycle/availability.py):

* stage promotion: the policy first (``{control: 100}``), then the transition. The
  last step's policy is ``{Production: 0, Staging: 100}``; the transition empties
  Staging, an optional target, which every availability policy (FailStatic included:
  it keeps only *required* targets) unloads at once, leaving only a weight-0 target:
  every request would fail until the reset policy landed. Policy first instead sends
  traffic back to the old Production version for at most one poll, then the Production
  slot swaps to the candidate version once loaded (a swap never empties a slot).
* alias promotion: the alias move first, then the policy. The candidate's alias keeps
  naming the candidate version, so nothing empties; the control alias's slot swaps to
  the candidate version once loaded, and only then does traffic return to it: no
  request is ever answered by the old version again.

The decision tags come last: a finished rollout whose version already carries them has
had all its effects (``settled``), so the controller leaves its policy alone from then
on (an operator may change it after the rollout).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from registry_watcher.traffic_policy import POLICY_TAG
from service.rollouts.decision_tags import RESULT, decision_tags
from service.rollouts.progression import policy_for
from service.rollouts.rollout_plan import Phase, Rollout, RolloutPlan
from service.rollouts.rollout_store import ModelTags, RegistryModelTags

log = logging.getLogger("stageserve.rollouts")


@dataclass(frozen=True)
class VersionRecord:
    """What the effects read of a model version: its stage and its tags."""

    stage: str
    tags: Mapping[str, str] = field(default_factory=dict)


class RolloutRegistry(ModelTags, Protocol):
    """The registry I/O of a controller (each call one attempt, bounded)."""

    def aliases(self, model: str) -> Mapping[str, int]: ...

    def version(self, model: str, version: int) -> VersionRecord: ...

    def set_version_tag(self, model: str, version: int, key: str, value: str) -> None: ...

    def transition(self, model: str, version: int, stage: str) -> None:
        """Move ``version`` to ``stage``, archiving the versions there."""
        ...

    def set_alias(self, model: str, alias: str, version: int) -> None: ...


class MlflowRolloutRegistry(RegistryModelTags):
    """``RolloutRegistry`` of an MLflow registry (registry_watcher/poll_client.py)."""

    def aliases(self, model: str) -> Mapping[str, int]:
        found = self.client.get_registered_model(model).aliases or {}
        return {alias: int(version) for alias, version in found.items()}

    def version(self, model: str, version: int) -> VersionRecord:
        found = self.client.get_model_version(model, str(version))
        return VersionRecord(str(found.current_stage or "None"), dict(found.tags or {}))

    def set_version_tag(self, model: str, version: int, key: str, value: str) -> None:
        self.client.set_model_version_tag(model, str(version), key, value)

    def transition(self, model: str, version: int, stage: str) -> None:
        with warnings.catch_warnings():  # stages are deprecated in MLflow, still supported
            warnings.simplefilter("ignore", FutureWarning)
            self.client.transition_model_version_stage(
                model, str(version), stage, archive_existing_versions=True
            )

    def set_alias(self, model: str, alias: str, version: int) -> None:
        self.client.set_registered_model_alias(model, alias, str(version))

    def models_tagged(self, keys: tuple[str, ...]) -> list[str]:
        """The registered models carrying any of the tags ``keys`` (every page)."""
        found: list[str] = []
        token: str | None = None
        while True:
            page = self.client.search_registered_models(max_results=1000, page_token=token)
            found += [m.name for m in page if any(key in (m.tags or {}) for key in keys)]
            token = page.token
            if not token:
                return found


class RegistryEffects:
    """Applies a stored rollout's effects, writing only what differs."""

    def __init__(
        self, registry: RolloutRegistry, after_write: Callable[[], None] = lambda: None
    ) -> None:
        self.registry = registry
        # Called after a policy write or a promotion: the embedded controller's gateway
        # reads the registry back at once instead of at its next poll.
        self.after_write = after_write

    def settled(self, rollout: Rollout) -> bool:
        """Whether the candidate version carries this state's decision tags (written
        last, so every other effect of the state is done)."""
        plan, state = rollout.plan, rollout.state
        want = decision_tags(plan, state)
        have = self.registry.version(plan.model, plan.candidate_version).tags
        return all(have.get(key) == value for key, value in want.items())

    def apply(self, rollout: Rollout, policy_text: str | None) -> str:
        """Policy, promotion (in the order the module's text explains), decision tags;
        ``policy_text``: the policy tag as last read (None: absent). Returns the policy
        tag's text now stored."""
        plan, state = rollout.plan, rollout.state
        promote = state.phase is Phase.PROMOTED
        # One read of the candidate version serves the promotion and the decision tags:
        # neither the policy write nor the promotion changes its tags.
        record = self.registry.version(plan.model, plan.candidate_version)
        if promote and plan.promotion.kind == "alias":
            self._promote(plan, record)
        policy_text = self.apply_policy(rollout, policy_text)
        if promote and plan.promotion.kind == "stage":
            self._promote(plan, record)
        if promote:
            self.after_write()
        self._decision_tags(rollout, record.tags)
        return policy_text

    def apply_policy(self, rollout: Rollout, policy_text: str | None) -> str:
        """The state's traffic policy, written when the tag (``policy_text``) differs."""
        want = policy_for(rollout.plan, rollout.state).to_json()
        if policy_text != want:
            self.registry.set_model_tag(rollout.plan.model, POLICY_TAG, want)
            log.info("%s: traffic policy %s", rollout.plan.model, want)
            self.after_write()
        return want

    def _promote(self, plan: RolloutPlan, record: VersionRecord) -> None:
        model, version, promotion = plan.model, plan.candidate_version, plan.promotion
        if promotion.kind == "stage":
            if record.stage != promotion.name:
                self.registry.transition(model, version, promotion.name)
                log.info("%s: version %d promoted to %s", model, version, promotion.name)
        elif self.registry.aliases(model).get(promotion.name) != version:
            self.registry.set_alias(model, promotion.name, version)
            log.info("%s: alias @%s moved to version %d", model, promotion.name, version)

    def _decision_tags(self, rollout: Rollout, have: Mapping[str, str]) -> None:
        plan = rollout.plan
        want = decision_tags(plan, rollout.state)
        # The result last: a reader that sees the new result sees its figures with it.
        for key in sorted(want, key=lambda key: key == RESULT):
            if have.get(key) != want[key]:
                self.registry.set_version_tag(plan.model, plan.candidate_version, key, want[key])
