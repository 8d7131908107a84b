"""The posterior of each arm's mean reward, from its RewardSummary alone: what
Thompson sampling draws from (service/rollouts/thompson.py).

0/1 rewards: Beta(1 + successes, 1 + failures), the uniform prior updated.
Continuous rewards: a Normal posterior of the mean with a weak prior, the pooled mean
and variance of every arm's rewards worth ``prior_weight`` rewards (empirical Bayes).
An arm with n rewards, mean m and sum of squared deviations ss has

    mean     (n·m + n0·m0) / (n + n0)
    variance σ² / (n + n0),  σ² = (ss + n0·v0) / (max(n - 1, 0) + n0)

so with many rewards it is Normal(m, s²/n), and with none or one it is the prior's
(the pooled variance stands in for a sample variance one reward cannot give). The
plug-in σ² ignores its own uncertainty (a Student t would widen the tails with few
rewards): the prior keeps that from mattering much, and the floor keeps exploring.
Arms without rewards share the prior, so they tie.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import betainc, betaincinv, betaln, ndtr, ndtri, xlog1py, xlogy

from service.experiments.reward_stats import RewardSummary


@dataclass(frozen=True)
class BetaPosterior:
    """Beta(alpha, beta): the posterior of a 0/1 reward's rate."""

    alpha: float
    beta: float

    def pdf(self, x: float) -> float:
        if not 0.0 <= x <= 1.0:
            return 0.0
        log_pdf = xlogy(self.alpha - 1, x) + xlog1py(self.beta - 1, -x)
        return float(np.exp(log_pdf - betaln(self.alpha, self.beta)))

    def cdf(self, x: float) -> float:
        return float(betainc(self.alpha, self.beta, min(max(x, 0.0), 1.0)))

    def quantile(self, q: float) -> float:
        return float(betaincinv(self.alpha, self.beta, q))

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.beta(self.alpha, self.beta, size)


@dataclass(frozen=True)
class NormalPosterior:
    """Normal(mean, sd²): the posterior of a continuous reward's mean (sd > 0)."""

    mean: float
    sd: float

    def pdf(self, x: float) -> float:
        z = (x - self.mean) / self.sd
        return math.exp(-0.5 * z * z) / (self.sd * math.sqrt(2 * math.pi))

    def cdf(self, x: float) -> float:
        return float(ndtr((x - self.mean) / self.sd))

    def quantile(self, q: float) -> float:
        return self.mean + self.sd * float(ndtri(q))

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.normal(self.mean, self.sd, size)


Posterior = BetaPosterior | NormalPosterior


def beta_posterior(rewards: RewardSummary) -> BetaPosterior:
    """Beta(1 + successes, 1 + failures) of 0/1 rewards."""
    successes = rewards.successes()
    return BetaPosterior(alpha=1.0 + successes, beta=1.0 + rewards.count - successes)


def normal_posteriors(
    arms: Sequence[RewardSummary], prior_weight: float
) -> list[NormalPosterior] | None:
    """Each arm's Normal posterior of its mean under the pooled prior (module docstring).

    None when the pooled rewards have no spread (fewer than 2, or all equal): nothing
    tells the arms apart, and every arm ties.
    """
    pooled = sum(arms, RewardSummary())
    prior_mean, prior_variance = pooled.mean(), pooled.variance()
    if prior_mean is None or prior_variance is None or prior_variance <= 0.0:
        return None
    out = []
    for arm in arms:
        n = arm.count
        mean = arm.mean()
        arm_mean = prior_mean if mean is None else mean
        squares = (arm.variance() or 0.0) * (n - 1) if n >= 2 else 0.0
        sigma2 = (squares + prior_weight * prior_variance) / (max(n - 1, 0) + prior_weight)
        out.append(
            NormalPosterior(
                mean=(n * arm_mean + prior_weight * prior_mean) / (n + prior_weight),
                sd=math.sqrt(sigma2 / (n + prior_weight)),
            )
        )
    return out


def posteriors(arms: Sequence[RewardSummary], prior_weight: float) -> list[Posterior] | None:
    """Beta posteriors when every arm's rewards are 0/1, else Normal ones (one model
    for all arms, so their draws compare); None when no arm can be told apart."""
    if all(arm.is_binary() for arm in arms):
        return [beta_posterior(arm) for arm in arms]
    normal = normal_posteriors(arms, prior_weight)
    return None if normal is None else list(normal)
