"""A simulated bandit: arms with fixed 0/1 reward rates, traffic split by the Thompson
weights, the weights recomputed every ``batch`` feedback items as a controller does
every interval (and rewritten only when ``should_rewrite`` says so).

Pure apart from its seeded random numbers: what the tests and the bench use to state
how many feedback items the bandit needs and what it costs (regret) against a fixed
split. Regret is the pseudo-regret: per item, the best rate minus the expected rate of
the split in force, so it measures the policy, not the luck of the draws.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from service.experiments.reward_stats import RewardSummary
from service.rollouts.thompson import BanditConfig, should_rewrite, thompson_weights


@dataclass(frozen=True)
class SimulationRun:
    """What one simulated run measured, in feedback items."""

    reached_at: int | None  # items until the best arm first had >= the target share
    held_from: int | None  # items after which it kept that share to the horizon
    regret: float  # expected rewards lost against always the best arm
    fixed_regret: float  # the same for the fixed even split
    policies: tuple[dict[str, float], ...]  # the shares of each policy write, in order


def simulate(
    rates: Mapping[str, float],
    config: BanditConfig,
    *,
    batch: int,
    horizon: int,
    seed: int,
    target_share: float = 0.8,
) -> SimulationRun:
    """Run ``horizon`` feedback items (whole batches) with arms of the given 0/1 rates."""
    if batch < 1 or horizon < batch:
        raise ValueError(f"need 1 <= batch <= horizon, not batch={batch}, horizon={horizon}")
    arms = list(rates)
    rate = np.array([rates[a] for a in arms])
    best_arm = arms[int(np.argmax(rate))]
    rng = np.random.default_rng(seed)
    stats = {a: RewardSummary() for a in arms}
    shares = thompson_weights(stats, config).shares()
    policies, regret, reached_at, held_from = [shares], 0.0, None, None
    for done in range(batch, horizon + 1, batch):
        split = np.array([shares[a] for a in arms])
        regret += batch * float(rate.max() - split @ rate)
        chosen = rng.choice(len(arms), size=batch, p=split)
        rewards = rng.random(batch) < rate[chosen]
        for i, arm in enumerate(arms):
            got = rewards[chosen == i]
            wins = float(got.sum())
            stats[arm] += RewardSummary(count=int(got.size), total=wins, total_sq=wins)
        new = thompson_weights(stats, config).shares()
        if should_rewrite(shares, new, config.min_change):
            shares = new
            policies.append(shares)
        if shares[best_arm] >= target_share:
            reached_at = done if reached_at is None else reached_at
            held_from = done if held_from is None else held_from
        else:
            held_from = None
    fixed = horizon * float(rate.max() - rate.mean())
    return SimulationRun(reached_at, held_from, regret, fixed, tuple(policies))
