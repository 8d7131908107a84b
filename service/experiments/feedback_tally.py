"""What a post of feedback adds to the counters: per model, target and version, items
accepted and duplicate, and the reward sums that aggregate exactly across workers and
replicas (count, sum, sum of squares); refusals per reason.

Counters never decrease, and rewards may be negative: the sum is kept as two counters,
of the positive rewards and of the magnitudes of the negative ones (sum = positive -
negative). ``nonbinary`` counts rewards other than 0 and 1, so a reader knows whether
the two-proportion test applies. Pure: service/experiments/feedback_intake.py writes
the increments to Prometheus.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from service.experiments.feedback_items import Reason
from service.experiments.request_ids import Attribution

ACCEPTED, DUPLICATE = "accepted", "duplicate"
FEEDBACK_RESULTS = (ACCEPTED, DUPLICATE)


@dataclass(frozen=True)
class AcceptedFeedback:
    """An item counted now: only its parts no worker had counted before (a reward
    already counted comes as None, a truth already logged as ``has_truth`` False)."""

    attribution: Attribution
    reward: float | None
    has_truth: bool
    truth: Any
    received_at: float


# (model, target, version) as label values
Served = tuple[str, str, str]


def served(attribution: Attribution) -> Served:
    return attribution.model, attribution.target, str(attribution.version)


@dataclass
class RewardSums:
    count: int = 0
    positive_sum: float = 0.0
    negative_sum: float = 0.0  # of magnitudes: the sum is positive_sum - negative_sum
    squares_sum: float = 0.0
    nonbinary: int = 0

    def add(self, reward: float) -> None:
        self.count += 1
        if reward >= 0:
            self.positive_sum += reward
        else:
            self.negative_sum -= reward
        self.squares_sum += reward * reward
        if reward not in (0.0, 1.0):
            self.nonbinary += 1


@dataclass
class Tally:
    feedback: Counter[tuple[Served, str]] = field(default_factory=Counter)
    refused: Counter[Reason] = field(default_factory=Counter)
    rewards: dict[Served, RewardSums] = field(default_factory=dict)


def tally(
    accepted: Sequence[AcceptedFeedback],
    duplicates: Sequence[Attribution],
    refused: Sequence[Reason],
) -> Tally:
    """The increments one post makes."""
    result = Tally()
    for item in accepted:
        key = served(item.attribution)
        result.feedback[key, ACCEPTED] += 1
        if item.reward is not None:
            result.rewards.setdefault(key, RewardSums()).add(item.reward)
    for attribution in duplicates:
        result.feedback[served(attribution), DUPLICATE] += 1
    result.refused.update(refused)
    return result
