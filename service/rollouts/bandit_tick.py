"""One bandit tick: the rewards of every arm since the bandit started in, the traffic
policy to write out (or None: the one in force is close enough), with the figures a
controller publishes and logs.

Pure: what reads the rewards is service/rollouts/bandit_rewards.py, what writes the
policy is the controller. The policy's weights are the Thompson weights in percent
(0.1 % units, thompson.py), in the bandit's arm order, sticky as the bandit says; a
shadow of the policy in force is kept (the bandit owns the weights, not the mirror).
The hysteresis is ``should_rewrite`` on the shares, plus any change of the arms or of
stickiness, so a policy someone edited by hand is put back at the next tick.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from registry_watcher.traffic_policy import TrafficPolicy, policy_from_dict
from service.experiments.reward_stats import RewardSummary
from service.rollouts.bandit_config import BanditPlan
from service.rollouts.thompson import should_rewrite, thompson_weights


@dataclass(frozen=True)
class BanditDecision:
    """What one tick decided, and the figures it decided on (by arm, in arm order)."""

    policy: TrafficPolicy | None  # to write; None: keep the policy in force
    percents: dict[str, float]  # the computed weights in percent (also when not written)
    best: dict[str, float]  # P(arm is best) before the floor and the rounding
    rewards: dict[str, RewardSummary]  # what it was computed from, since started_at
    at: float

    @property
    def rewrite(self) -> bool:
        return self.policy is not None

    def to_json(self) -> dict[str, object]:
        """For a log line or an API answer: per arm, its weight, P(best), rewards, mean."""
        return {
            "at": self.at,
            "rewrite": self.rewrite,
            "arms": {
                arm: {
                    "percent": self.percents[arm],
                    "p_best": self.best[arm],
                    "rewards": self.rewards[arm].count,
                    "mean": self.rewards[arm].mean(),
                }
                for arm in self.percents
            },
        }


def bandit_step(
    config: BanditPlan,
    rewards: Mapping[str, RewardSummary],
    current_policy: TrafficPolicy | None,
    now: float,
) -> BanditDecision:
    """The tick's decision; an arm missing from ``rewards`` has none yet, and rewards of
    targets that are not arms are ignored."""
    arm_rewards = {arm: rewards.get(arm, RewardSummary()) for arm in config.arms}
    weights = thompson_weights(arm_rewards, config.weighting())
    percents = weights.percents()
    policy = bandit_policy(config, percents, current_policy)
    return BanditDecision(
        policy=policy if needs_rewrite(config, policy, current_policy) else None,
        percents=percents,
        best=weights.best,
        rewards=arm_rewards,
        at=now,
    )


def bandit_policy(
    config: BanditPlan, percents: Mapping[str, float], current: TrafficPolicy | None
) -> TrafficPolicy:
    """The policy of these weights: arms in order, the bandit's stickiness, the current
    policy's shadow kept."""
    document: dict[str, object] = {"weights": dict(percents), "sticky": config.sticky}
    if current is not None and current.shadow is not None:
        shadow = current.shadow
        document["shadow"] = {"target": shadow.target.text, "percent": shadow.percent}
    return policy_from_dict(document)


def needs_rewrite(config: BanditPlan, new: TrafficPolicy, current: TrafficPolicy | None) -> bool:
    """Whether ``new`` is worth writing over ``current`` (module's text)."""
    if current is None or current.sticky != new.sticky or current.shadow != new.shadow:
        return True
    old = {t.text: w for t, w in current.weights}
    if list(old) != [t.text for t in new.targets()]:  # other arms, or another order
        return True
    return should_rewrite(old, {t.text: w for t, w in new.weights}, config.min_change)
