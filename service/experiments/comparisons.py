"""Is a candidate's mean reward different from the control's? The difference
(candidate - control), its confidence interval, the test statistic and a two-sided
p-value, from the two RewardSummaries alone.

Continuous rewards: Welch's t-test, which does not assume equal variances (a new
version rarely has the old one's spread), with the Welch-Satterthwaite degrees of
freedom; scipy's ``ttest_ind(candidate, control, equal_var=False)``.

0/1 rewards on both sides: the pooled two-proportion z-test (the p-value of the
chi-square test of the 2x2 table without continuity correction), and Newcombe's
hybrid score interval for the difference (his method 10, built from each side's Wilson
interval): it keeps near its nominal coverage with small samples and rates near 0 or
1, where the unpooled Wald interval falls short, never leaves [-1, 1], and agrees with
the Wilson intervals shown for each side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.special import ndtr, stdtr

from service.experiments.intervals import (
    DEFAULT_CONFIDENCE,
    Interval,
    Undefined,
    check_confidence,
    t_critical,
    wilson_interval,
)
from service.experiments.reward_stats import RewardSummary

WELCH = "welch"
TWO_PROPORTIONS = "two_proportions"


@dataclass(frozen=True)
class Comparison:
    """A candidate against the control: ``test`` is WELCH or TWO_PROPORTIONS.

    ``statistic`` is t (Welch) or z (proportions), positive when the candidate's mean
    is higher; ``df`` is the Welch-Satterthwaite degrees of freedom (None for z).
    """

    test: str
    difference: float
    interval: Interval
    statistic: float
    p_value: float
    df: float | None = None


def _too_few(
    control: RewardSummary, candidate: RewardSummary, confidence: float
) -> Undefined | None:
    """Why the two sides cannot be compared (no or 1 reward on a side), or None."""
    check_confidence(confidence)
    for side, summary in (("control", control), ("candidate", candidate)):
        if summary.count == 0:
            return Undefined(f"no feedback for the {side}")
        if summary.count < 2:
            return Undefined(f"fewer than 2 rewards for the {side}")
    return None


def _same_everywhere() -> Undefined:
    return Undefined("every reward is the same on both sides")


def welch(
    control: RewardSummary, candidate: RewardSummary, confidence: float = DEFAULT_CONFIDENCE
) -> Comparison | Undefined:
    """Welch's t-test of the candidate's mean reward against the control's."""
    if too_few := _too_few(control, candidate, confidence):
        return too_few
    m1, v1 = control.mean(), control.variance()
    m2, v2 = candidate.mean(), candidate.variance()
    assert m1 is not None and v1 is not None and m2 is not None and v2 is not None
    share1, share2 = v1 / control.count, v2 / candidate.count
    se_sq = share1 + share2
    if se_sq == 0.0:
        return _same_everywhere()
    df = se_sq**2 / (share1**2 / (control.count - 1) + share2**2 / (candidate.count - 1))
    se = math.sqrt(se_sq)
    difference = m2 - m1
    t = difference / se
    half = t_critical(df, confidence) * se
    return Comparison(
        test=WELCH,
        difference=difference,
        interval=Interval(difference - half, difference + half, confidence, WELCH),
        statistic=t,
        p_value=float(2 * stdtr(df, -abs(t))),
        df=df,
    )


def two_proportions(
    control: RewardSummary, candidate: RewardSummary, confidence: float = DEFAULT_CONFIDENCE
) -> Comparison | Undefined:
    """The pooled two-proportion z-test and Newcombe's interval, for 0/1 rewards."""
    if too_few := _too_few(control, candidate, confidence):
        return too_few
    if not (control.is_binary() and candidate.is_binary()):
        return Undefined("rewards are not all 0 or 1")
    k1, n1 = control.successes(), control.count
    k2, n2 = candidate.successes(), candidate.count
    pooled = (k1 + k2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return _same_everywhere()
    p1, p2 = k1 / n1, k2 / n2
    difference = p2 - p1
    z = difference / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    w1 = wilson_interval(k1, n1, confidence)
    w2 = wilson_interval(k2, n2, confidence)
    low = difference - math.hypot(p2 - w2.low, w1.high - p1)
    high = difference + math.hypot(w2.high - p2, p1 - w1.low)
    return Comparison(
        test=TWO_PROPORTIONS,
        difference=difference,
        interval=Interval(low, high, confidence, "newcombe"),
        statistic=z,
        p_value=float(2 * ndtr(-abs(z))),
    )


def compare(
    control: RewardSummary, candidate: RewardSummary, confidence: float = DEFAULT_CONFIDENCE
) -> Comparison | Undefined:
    """The proportion test when both sides' rewards are all 0/1, Welch's otherwise."""
    if control.is_binary() and candidate.is_binary():
        return two_proportions(control, candidate, confidence)
    return welch(control, candidate, confidence)
