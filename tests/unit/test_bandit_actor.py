"""service/rollouts/bandit_actor.py: the controller's bandit writes the weights of the
rewards counted since the bandit started, at the bandit's own interval, publishes them,
and leaves alone a bandit stopped or restarted between its read and its write."""

from __future__ import annotations

import json
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Gauge

from registry_watcher.traffic_policy import POLICY_TAG
from service.experiments.reward_stats import RewardSummary
from service.rollouts.bandit_actor import BanditActor
from service.rollouts.bandit_config import BANDIT_TAG, BanditPlan, encode_bandit, new_bandit

T0 = 1_764_500_000.0


class Tags:
    def __init__(self, tags: dict[str, str]) -> None:
        self.tags = tags
        self.writes: list[tuple[str, str]] = []
        self.before_read: list[dict[str, str]] = []  # replaces the tags at the next read

    def model_tags(self, model: str) -> Mapping[str, str]:
        if self.before_read:
            self.tags = self.before_read.pop(0)
        return dict(self.tags)

    def set_model_tag(self, model: str, key: str, value: str) -> None:
        self.writes.append((key, value))
        self.tags[key] = value


def rewards_of(b_successes: int) -> dict[str, RewardSummary]:
    a = RewardSummary.from_values([1.0] * 100 + [0.0] * 100)
    b = RewardSummary.from_values([1.0] * b_successes + [0.0] * (200 - b_successes))
    return {"Production": a, "Staging": b}


def actor(tags: Tags, now: list[float], b_successes: int = 140) -> tuple[BanditActor, Gauge]:
    gauge = Gauge("w", "w", ["model", "target"], registry=CollectorRegistry())
    calls: list[BanditPlan] = []

    def rewards(model: str, config: BanditPlan) -> dict[str, RewardSummary]:
        calls.append(config)
        return rewards_of(b_successes)

    return BanditActor(tags, rewards, weights=gauge, clock=lambda: now[0]), gauge


def bandit_tags(**settings: object) -> dict[str, str]:
    plan = new_bandit(["Production", "Staging"], T0, **settings)
    return {BANDIT_TAG: encode_bandit(plan)}


def test_the_better_arm_gets_the_weight_and_the_policy_is_written() -> None:
    tags = Tags(bandit_tags(min_rewards=100))
    act, gauge = actor(tags, [T0 + 60])
    act("churn", tags.model_tags("churn"))
    ((key, value),) = tags.writes
    assert key == POLICY_TAG
    weights = json.loads(value)["weights"]
    assert weights["Staging"] > 90 and weights["Production"] >= 5  # the floor
    assert gauge.labels("churn", "Staging")._value.get() == weights["Staging"] / 100


def test_it_waits_for_the_bandit_s_interval() -> None:
    tags = Tags(bandit_tags(interval_s=30))
    now = [T0 + 60]
    act, _ = actor(tags, now)
    act("churn", tags.model_tags("churn"))
    assert len(tags.writes) == 1
    tags.tags.pop(POLICY_TAG)  # someone clears the policy: rewritten, but not before 30 s
    now[0] += 10
    act("churn", tags.model_tags("churn"))
    assert len(tags.writes) == 1
    now[0] += 25
    act("churn", tags.model_tags("churn"))
    assert len(tags.writes) == 2


def test_a_bandit_stopped_between_the_read_and_the_write_is_left_alone() -> None:
    tags = Tags(bandit_tags())
    act, _ = actor(tags, [T0 + 60])
    seen = tags.model_tags("churn")
    winner = {POLICY_TAG: '{"weights":{"Staging":100},"sticky":true}'}
    tags.before_read.append(winner)  # `stageserve bandit stop --winner Staging` meanwhile
    act("churn", seen)
    assert tags.writes == []


def test_no_rewrite_when_no_share_moved_enough() -> None:
    tags = Tags(bandit_tags(min_rewards=100))
    now = [T0 + 60]
    act, _ = actor(tags, now, b_successes=100)  # equal arms: an even split
    act("churn", tags.model_tags("churn"))
    assert len(tags.writes) == 1
    now[0] += 60
    act("churn", tags.model_tags("churn"))  # the same figures: nothing to write
    assert len(tags.writes) == 1
