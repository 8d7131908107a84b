"""Bandit weights by Thompson sampling: each arm's share of traffic is the probability
that it is the best arm under the posterior of its mean reward (posteriors.py).

Pure: a RewardSummary per arm in, weights out. The policy (``BanditConfig``: the
exploration floor, the precision, how P(best) is computed, when a change is worth a
rewrite) is apart from the mechanism (``thompson_weights``, ``should_rewrite``).

P(arm i is best) = ∫ f_i(x) · Π_{j≠i} F_j(x) dx, integrated numerically (``integral``,
the default: deterministic to ~1e-10, so equal statistics give equal weights) or
counted over seeded posterior draws (``monte_carlo``, standard error ≈ √(p(1-p)/draws)).
The floor mixes in the uniform split, w_i = floor + (1 - k·floor)·P_i, so every arm
keeps at least ``floor`` and the order of the arms is kept. Weights are whole units of
1/``resolution`` summing exactly to 1 (largest remainders), so posterior jitter below
the precision does not change the policy tag, and ``should_rewrite`` adds hysteresis.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

import numpy as np
from scipy.integrate import quad

from service.experiments.reward_stats import RewardSummary
from service.rollouts.posteriors import Posterior, posteriors

K = TypeVar("K", bound=Hashable)
Method = Literal["integral", "monte_carlo"]
_TAIL = 1e-12  # integrate each arm's density between these quantiles


class BanditConfigError(ValueError):
    """A bandit setting that cannot be used; the message names the setting."""


@dataclass(frozen=True)
class BanditConfig:
    """How bandit weights are computed: the policy ``thompson_weights`` applies."""

    floor: float = 0.05  # every arm keeps at least this share (exploration)
    resolution: int = 1000  # weights are whole multiples of 1/resolution (0.1 %)
    min_change: float = 0.01  # rewrite the policy only when a share moves this much
    prior_weight: float = 1.0  # continuous rewards: the pooled prior, in rewards
    min_rewards: int = 0  # split evenly until every arm has this many rewards
    method: Method = "integral"
    draws: int = 10_000  # monte_carlo only
    seed: int = 0  # monte_carlo only: equal statistics, equal weights

    def __post_init__(self) -> None:
        if not (isinstance(self.floor, int | float) and 0.0 <= self.floor < 1.0):
            raise BanditConfigError(f"bandit floor must be in [0, 1), not {self.floor!r}")
        if not (isinstance(self.resolution, int) and self.resolution >= 1):
            raise BanditConfigError(
                f"bandit resolution must be a whole number >= 1, not {self.resolution!r}"
            )
        if not (isinstance(self.min_change, int | float) and 0.0 <= self.min_change <= 1.0):
            raise BanditConfigError(f"bandit min_change must be in [0, 1], not {self.min_change!r}")
        if not (isinstance(self.prior_weight, int | float) and self.prior_weight > 0.0):
            raise BanditConfigError(f"bandit prior_weight must be > 0, not {self.prior_weight!r}")
        if not (isinstance(self.min_rewards, int) and self.min_rewards >= 0):
            raise BanditConfigError(
                f"bandit min_rewards must be a whole number >= 0, not {self.min_rewards!r}"
            )
        if self.method not in ("integral", "monte_carlo"):
            raise BanditConfigError(
                f"bandit method must be 'integral' or 'monte_carlo', not {self.method!r}"
            )
        if not (isinstance(self.draws, int) and self.draws >= 1):
            raise BanditConfigError(f"bandit draws must be a whole number >= 1, not {self.draws!r}")

    def floor_units(self) -> int:
        """The floor in units of 1/resolution, rounded up so no arm is below it."""
        return math.ceil(round(self.floor * self.resolution, 9))

    def check_arms(self, arms: int) -> None:
        """Refuse an arm count the floor cannot give to: floor · arms must fit in 1."""
        if arms < 1:
            raise BanditConfigError("a bandit needs at least one arm")
        if arms * self.floor_units() > self.resolution:
            raise BanditConfigError(
                f"bandit floor {self.floor} for {arms} arms is {arms * self.floor:g} > 1: "
                f"lower the floor to at most {1 / arms:g}"
            )


@dataclass(frozen=True)
class BanditWeights(Generic[K]):
    """The weights of one computation, in the arms' order."""

    best: dict[K, float]  # P(arm is best), before the floor and the rounding
    units: dict[K, int]  # shares in units of 1/resolution, summing to resolution
    resolution: int

    def shares(self) -> dict[K, float]:
        """Shares summing to 1 (each the float nearest units/resolution)."""
        return {arm: u / self.resolution for arm, u in self.units.items()}

    def percents(self) -> dict[K, float]:
        """Shares in percent, as a traffic policy's weights (87.3, not 87.30000000000001)."""
        return {arm: u * 100 / self.resolution for arm, u in self.units.items()}


def thompson_weights(rewards: Mapping[K, RewardSummary], config: BanditConfig) -> BanditWeights[K]:
    """Each arm's weight: P(best) under its posterior, floored and rounded (module doc)."""
    arms = list(rewards)
    config.check_arms(len(arms))
    best = best_probabilities([rewards[a] for a in arms], config)
    units = floored_units(best, config)
    return BanditWeights(
        best=dict(zip(arms, best, strict=True)),
        units=dict(zip(arms, units, strict=True)),
        resolution=config.resolution,
    )


def best_probabilities(arms: Sequence[RewardSummary], config: BanditConfig) -> list[float]:
    """P(arm i is best) for each arm, summing to 1; equal when nothing tells arms apart
    or an arm has fewer than ``min_rewards`` rewards (a warm-up against early flukes)."""
    warming_up = any(arm.count < config.min_rewards for arm in arms)
    dists = None if warming_up else posteriors(arms, config.prior_weight)
    if dists is None or len(dists) == 1:
        return [1.0 / len(arms)] * len(arms)
    if config.method == "monte_carlo":
        probs = _counted(dists, config.draws, config.seed)
    else:
        probs = [_integrated(i, dists) for i in range(len(dists))]
    total = math.fsum(probs)
    return [p / total for p in probs]


def _integrated(i: int, dists: Sequence[Posterior]) -> float:
    """∫ f_i(x) Π_{j≠i} F_j(x) dx over arm i's density (all but 2e-12 of it)."""
    mine, others = dists[i], [d for j, d in enumerate(dists) if j != i]
    low, high = mine.quantile(_TAIL), mine.quantile(1.0 - _TAIL)
    if not high > low:
        return float(np.prod([d.cdf(low) for d in others]))
    # Where another arm's cdf climbs steeply, tell quad so it does not step over it.
    marks = sorted(
        {x for d in others for x in (d.quantile(1e-6), d.quantile(0.5), d.quantile(1 - 1e-6))}
    )
    points = [x for x in marks if low < x < high]

    def integrand(x: float) -> float:
        value = mine.pdf(x)
        for d in others:
            value *= d.cdf(x)
        return value

    value, _ = quad(integrand, low, high, points=points or None, limit=200, epsabs=1e-13)
    return max(float(value), 0.0)


def _counted(dists: Sequence[Posterior], draws: int, seed: int) -> list[float]:
    """The share of joint posterior draws in which each arm is the largest."""
    rng = np.random.default_rng(seed)
    samples = np.stack([d.draw(rng, draws) for d in dists])
    wins = np.bincount(np.argmax(samples, axis=0), minlength=len(dists))
    return [float(w) / draws for w in wins]


def floored_units(best: Sequence[float], config: BanditConfig) -> list[int]:
    """Units of 1/resolution: the floor to each arm, the rest shared by P(best) with
    largest remainders (ties to the earlier arm), so they sum exactly to resolution."""
    floor = config.floor_units()
    free = config.resolution - floor * len(best)
    raw = [p * free for p in best]
    units = [math.floor(r) for r in raw]
    left = max(free - sum(units), 0)
    by_remainder = sorted(range(len(raw)), key=lambda i: (units[i] - raw[i], i))
    for i in by_remainder[:left]:
        units[i] += 1
    return [floor + u for u in units]


def should_rewrite(
    old: Mapping[K, float] | None, new: Mapping[K, float], min_change: float
) -> bool:
    """Whether ``new`` weights are worth writing over ``old`` (hysteresis).

    Both are normalised to shares first (a policy tag's raw weights compare as they
    route); a different set of arms, or any share moving by ``min_change`` or more,
    is worth it.
    """
    if old is None or set(old) != set(new):
        return True
    old_total, new_total = math.fsum(old.values()), math.fsum(new.values())
    if old_total <= 0 or new_total <= 0:
        return True
    return any(abs(old[a] / old_total - new[a] / new_total) >= min_change for a in new)
