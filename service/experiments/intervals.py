"""Confidence intervals for a version's mean reward, from its RewardSummary alone.

Continuous rewards get Student's t interval. 0/1 rewards get the Wilson score interval:
unlike the Wald interval (mean ± z·se) it keeps close to its nominal coverage with few
rewards or a rate near 0 or 1 (Brown, Cai & DasGupta 2001), never leaves [0, 1], and
stays informative when every reward so far is 0 (or 1), where the Wald interval
collapses to a point. It is scipy's ``binomtest(k, n).proportion_ci(method="wilson")``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.special import ndtri, stdtrit

from service.experiments.reward_stats import RewardSummary

DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """``[low, high]`` at ``confidence`` (e.g. 0.95), and the method that made it."""

    low: float
    high: float
    confidence: float
    method: str


@dataclass(frozen=True)
class Undefined:
    """A statistic the data cannot give, and why (said to the operator as is)."""

    reason: str


def check_confidence(confidence: float) -> None:
    """Refuse a confidence level outside (0, 1): a caller's bug, not the data's."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 exclusive, not {confidence}")


def z_critical(confidence: float) -> float:
    """The normal quantile of a two-sided interval at ``confidence`` (1.96 at 0.95)."""
    return float(ndtri(0.5 + 0.5 * confidence))


def t_critical(df: float, confidence: float) -> float:
    """Student's t quantile of a two-sided interval at ``confidence`` with ``df``."""
    return float(stdtrit(df, 0.5 + 0.5 * confidence))


def wilson_interval(successes: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> Interval:
    """The Wilson score interval of a proportion ``successes / n`` (n >= 1)."""
    check_confidence(confidence)
    z = z_critical(confidence)
    p = successes / n
    denominator = 2 * (n + z * z)
    center = (2 * n * p + z * z) / denominator
    half = z / denominator * math.sqrt(4 * n * p * (1 - p) + z * z)
    low = 0.0 if successes == 0 else center - half
    high = 1.0 if successes == n else center + half
    return Interval(low, high, confidence, "wilson")


def student_t_interval(
    summary: RewardSummary, confidence: float = DEFAULT_CONFIDENCE
) -> Interval | Undefined:
    """``mean ± t(n-1) · sd / sqrt(n)``; undefined below 2 rewards or without spread."""
    check_confidence(confidence)
    mean, variance = summary.mean(), summary.variance()
    if mean is None or variance is None:
        return Undefined("fewer than 2 rewards")
    if variance == 0.0:
        return Undefined("every reward is the same")
    half = t_critical(summary.count - 1, confidence) * math.sqrt(variance / summary.count)
    return Interval(mean - half, mean + half, confidence, "student_t")


def mean_interval(
    summary: RewardSummary, confidence: float = DEFAULT_CONFIDENCE
) -> Interval | Undefined:
    """The mean reward's interval: Wilson for 0/1 rewards, Student's t otherwise."""
    check_confidence(confidence)
    if summary.count < 2:
        return Undefined("fewer than 2 rewards")
    if summary.is_binary():
        return wilson_interval(summary.successes(), summary.count, confidence)
    return student_t_interval(summary, confidence)
