"""RewardSummary: everything the statistics need of a version's rewards, as four sums.

Each field is additive, so each can be a Prometheus counter: summing the counters of
every worker and replica gives exactly the fleet's summary, and the fleet's mean and
variance are the ones a single process holding every reward would compute.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class RewardSummary:
    """Count, sum, sum of squares, and how many rewards were neither 0 nor 1.

    ``non_binary`` is what says whether every reward was 0/1 (``is_binary``), which
    picks the interval and the test: a flag would not add up across replicas, a count does.
    """

    count: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    non_binary: int = 0

    @classmethod
    def from_values(cls, values: Iterable[float]) -> RewardSummary:
        """The summary of raw rewards; sums correctly rounded (``math.fsum``)."""
        rewards = [float(v) for v in values]
        bad = [v for v in rewards if not math.isfinite(v)]
        if bad:
            raise ValueError(f"a reward must be a finite number, not {bad[0]}")
        return cls(
            count=len(rewards),
            total=math.fsum(rewards),
            total_sq=math.fsum(v * v for v in rewards),
            non_binary=sum(1 for v in rewards if v not in (0.0, 1.0)),
        )

    def merged(self, other: RewardSummary) -> RewardSummary:
        """The summary of both sets of rewards (workers, replicas, windows)."""
        return RewardSummary(
            count=self.count + other.count,
            total=self.total + other.total,
            total_sq=self.total_sq + other.total_sq,
            non_binary=self.non_binary + other.non_binary,
        )

    def __add__(self, other: RewardSummary) -> RewardSummary:
        return self.merged(other)

    def since(self, start: RewardSummary) -> RewardSummary:
        """The rewards counted after ``start`` (an earlier snapshot of the same counters).

        A smaller count than at ``start`` means the counters were reset (a restart):
        everything counted now came after it, so the window is this snapshot.
        """
        if self.count < start.count:
            return self
        return RewardSummary(
            count=self.count - start.count,
            total=self.total - start.total,
            total_sq=self.total_sq - start.total_sq,
            non_binary=self.non_binary - start.non_binary,
        )

    def mean(self) -> float | None:
        """The mean reward; None without rewards."""
        return self.total / self.count if self.count else None

    def variance(self) -> float | None:
        """The sample variance (ddof=1); None with fewer than 2 rewards.

        Computed as ``(total_sq - total**2 / count) / (count - 1)`` in exact rational
        arithmetic on the stored floats, so the one loss is the rounding of ``total``
        and ``total_sq`` themselves: an absolute error of a few ulps of ``total_sq``,
        i.e. a relative error of about ``3e-16 * (1 + mean**2 / variance)``. That is far
        below 1e-9 for rewards that vary (0/1, [0, 1], values up to 1e3 spread over
        their range, at any n), and loses precision only when the spread is tiny next
        to the mean (e.g. rewards 1000 ± 0.001: ~1e-4 relative): the price of a form
        whose parts add up across replicas, where Welford's running update does not.
        """
        if self.count < 2:
            return None
        spread = Fraction(self.total_sq) - Fraction(self.total) ** 2 / self.count
        return float(max(spread, Fraction(0)) / (self.count - 1))

    def is_binary(self) -> bool:
        """Whether every reward was 0 or 1 (vacuously true without rewards)."""
        return self.non_binary == 0

    def successes(self) -> int:
        """The number of 1 rewards, when every reward was 0/1."""
        return round(self.total)
