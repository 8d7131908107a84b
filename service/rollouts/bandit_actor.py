"""The controller's bandit: for a model whose tags hold ``stageserve.bandit`` (and no
live rollout), every ``interval_s`` of the bandit's config, recompute the arms' weights
by Thompson sampling from the rewards counted since the bandit started
(service/rollouts/bandit_tick.py) and write them as the model's traffic policy, which
every replica already follows.

The weights are published as ``stageserve_bandit_weight`` at every computation; the
policy is written only when a share moved enough (``min_change``). Before writing, the
tags are read again: a bandit stopped or restarted meanwhile (``stageserve bandit
stop`` deletes the tag, then writes the winner's policy) is left alone, so a tick never
overwrites the winner. Errors propagate to the controller's tick, which logs and counts
them and tries again at its next tick.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from registry_watcher.traffic_policy import POLICY_TAG, PolicyError, TrafficPolicy, parse_policy
from service.rollouts.bandit_config import BANDIT_TAG, decode_bandit
from service.rollouts.bandit_rewards import BanditRewards
from service.rollouts.bandit_tick import BanditDecision, bandit_step
from service.rollouts.rollout_store import ModelTags

if TYPE_CHECKING:
    from prometheus_client import Gauge

log = logging.getLogger("stageserve.bandit")


class BanditActor:
    """``Controller(..., bandit=BanditActor(...))``: called per model under the lease."""

    def __init__(
        self,
        registry: ModelTags,
        rewards: BanditRewards,
        *,
        weights: Gauge | None = None,
        clock: Callable[[], float] = time.time,
        after_write: Callable[[], None] = lambda: None,
    ) -> None:
        self.registry = registry
        self.rewards = rewards
        self.weights = weights
        self.clock = clock
        self.after_write = after_write
        self._last: dict[str, tuple[str, float]] = {}  # model -> (bandit id, when computed)

    def __call__(self, model: str, tags: Mapping[str, str]) -> None:
        config = decode_bandit(tags[BANDIT_TAG])
        now = self.clock()
        last = self._last.get(model)
        if last is not None and last[0] == config.id and now - last[1] < config.interval_s:
            return  # not yet: the bandit's own interval, not the controller's tick
        self._last[model] = (config.id, now)
        decision = bandit_step(config, self.rewards(model, config), _policy(tags), now)
        if self.weights is not None:
            for arm, percent in decision.percents.items():
                self.weights.labels(model, arm).set(percent / 100)
        if decision.policy is None:
            return
        again = self.registry.model_tags(model).get(BANDIT_TAG)
        if again is None or decode_bandit(again).id != config.id:
            return  # stopped or restarted since this tick read it: not ours to write
        self.registry.set_model_tag(model, POLICY_TAG, decision.policy.to_json())
        log.info("%s: bandit weights %s (%s)", model, decision.percents, _counts(decision))
        self.after_write()


def _policy(tags: Mapping[str, str]) -> TrafficPolicy | None:
    text = tags.get(POLICY_TAG)
    if text is None:
        return None
    try:
        return parse_policy(text)
    except PolicyError:
        return None  # a garbage policy is replaced by the bandit's


def _counts(decision: BanditDecision) -> str:
    return ", ".join(f"{arm}: {s.count} rewards" for arm, s in decision.rewards.items())
