"""bandit_step: the policy of the Thompson weights (arm order, stickiness, the shadow
kept), written only when worth it, and the figures it decided on."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry_watcher.traffic_policy import parse_policy
from service.experiments.reward_stats import RewardSummary
from service.rollouts.bandit_config import BanditPlan
from service.rollouts.bandit_tick import bandit_step
from service.rollouts.thompson import BanditConfig, thompson_weights

FAST = settings(max_examples=60, deadline=None, database=None, derandomize=True)
PLAN = BanditPlan(arms=("Production", "Staging"), started_at=0.0, id="b1")


def binary(successes: int, failures: int) -> RewardSummary:
    return RewardSummary.from_values([1.0] * successes + [0.0] * failures)


REWARDS = {"Production": binary(75, 75), "Staging": binary(90, 60)}


def test_first_tick_writes_the_thompson_weights_in_percent() -> None:
    decision = bandit_step(PLAN, REWARDS, None, now=42.0)
    expected = thompson_weights(REWARDS, BanditConfig(min_rewards=100)).percents()
    assert decision.percents == expected
    assert decision.policy is not None and decision.rewrite
    assert decision.policy.to_dict() == {"weights": expected, "sticky": True}
    assert decision.percents["Staging"] > 80  # 0.6 vs 0.5 over 150 rewards each
    assert sum(decision.best.values()) == pytest.approx(1.0)
    assert decision.at == 42.0
    shown = decision.to_json()["arms"]
    assert shown["Staging"]["rewards"] == 150 and shown["Staging"]["mean"] == 0.6


def test_warm_up_splits_evenly_and_missing_arms_have_no_rewards() -> None:
    decision = bandit_step(PLAN, {"Staging": binary(99, 0), "Other": binary(5, 0)}, None, 0.0)
    assert decision.percents == {"Production": 50.0, "Staging": 50.0}
    assert decision.rewards["Production"] == RewardSummary()
    assert "Other" not in decision.rewards


def test_no_rewrite_when_the_policy_in_force_is_close_enough() -> None:
    first = bandit_step(PLAN, REWARDS, None, 0.0).policy
    assert first is not None
    assert bandit_step(PLAN, REWARDS, first, 1.0).policy is None
    nudged = {"Production": binary(75, 76), "Staging": binary(90, 60)}
    assert bandit_step(PLAN, nudged, first, 2.0).policy is None  # moves < 1 point


@pytest.mark.parametrize(
    "in_force",
    [
        '{"weights":{"Production":90,"Staging":10},"sticky":true}',  # edited by hand
        '{"weights":{"Staging":91.3,"Production":8.7},"sticky":true}',  # another order
        '{"weights":{"Production":8.7,"Staging":91.3},"sticky":false}',  # not sticky
        '{"weights":{"Production":100}}',  # other targets
    ],
)
def test_a_policy_that_is_not_the_bandits_is_rewritten(in_force: str) -> None:
    decision = bandit_step(PLAN, REWARDS, parse_policy(in_force), 0.0)
    assert decision.policy is not None
    assert list(decision.policy.to_dict()["weights"]) == ["Production", "Staging"]


def test_the_shadow_in_force_is_kept() -> None:
    current = parse_policy(
        '{"weights":{"Production":50,"Staging":50},"shadow":{"target":"@c","percent":10}}'
    )
    policy = bandit_step(PLAN, REWARDS, current, 0.0).policy
    assert policy is not None
    assert policy.to_dict()["shadow"] == {"target": "@c", "percent": 10}


def test_not_sticky_when_the_bandit_says_so() -> None:
    plan = BanditPlan(arms=("Production", "Staging"), started_at=0.0, id="b1", sticky=False)
    policy = bandit_step(plan, REWARDS, None, 0.0).policy
    assert policy is not None and policy.sticky is False


@given(
    counts=st.lists(st.tuples(st.integers(0, 300), st.integers(0, 300)), min_size=2, max_size=5),
    floor=st.sampled_from([0.0, 0.05, 0.1]),
)
@FAST
def test_policy_is_valid_floored_and_stable(counts, floor) -> None:
    arms = tuple(f"@arm{i}" for i in range(len(counts)))
    plan = BanditPlan(arms=arms, started_at=0.0, id="x", floor=floor, min_rewards=0)
    rewards = {arm: binary(s, f) for arm, (s, f) in zip(arms, counts, strict=True)}
    decision = bandit_step(plan, rewards, None, 0.0)
    assert decision.policy is not None
    written = parse_policy(decision.policy.to_json())  # what every replica reads back
    assert [t.text for t in written.targets()] == list(arms)
    assert sum(w for _, w in written.weights) == pytest.approx(100.0)
    assert min(w for _, w in written.weights) >= floor * 100 - 1e-9
    assert bandit_step(plan, rewards, written, 1.0).policy is None  # a fixed point
