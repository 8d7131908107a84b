"""What a post adds to the counters: the reward sums add up to the rewards' count, sum
and sum of squares exactly as one would compute them, negative rewards included."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from service.experiments.feedback_items import Reason
from service.experiments.feedback_tally import AcceptedFeedback, tally
from service.experiments.request_ids import Attribution

PROD = Attribution("id-p", "m", "Production", 1, 0)
STAGING = Attribution("id-s", "m", "Staging", 2, 0)


def accepted(attribution: Attribution, reward: float | None) -> AcceptedFeedback:
    return AcceptedFeedback(attribution, reward, False, None, 0.0)


def test_items_are_counted_per_target_and_version() -> None:
    counts = tally(
        [accepted(PROD, 1.0), accepted(PROD, 0.0), accepted(STAGING, None)],
        [STAGING],
        [Reason.FORGED, Reason.FORGED, Reason.UNSIGNED],
    )
    assert counts.feedback == {
        (("m", "Production", "1"), "accepted"): 2,
        (("m", "Staging", "2"), "accepted"): 1,
        (("m", "Staging", "2"), "duplicate"): 1,
    }
    assert counts.refused == {Reason.FORGED: 2, Reason.UNSIGNED: 1}
    assert set(counts.rewards) == {("m", "Production", "1")}  # a truth only: no reward
    prod = counts.rewards["m", "Production", "1"]
    assert (prod.count, prod.positive_sum, prod.negative_sum, prod.nonbinary) == (2, 1.0, 0.0, 0)


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=50))
def test_the_sums_are_the_rewards_sums(rewards: list[float]) -> None:
    counts = tally([accepted(PROD, r) for r in rewards], [], [])
    if not rewards:
        assert counts.rewards == {}
        return
    sums = counts.rewards["m", "Production", "1"]
    assert sums.count == len(rewards)
    assert sums.positive_sum >= 0 and sums.negative_sum >= 0  # counters never decrease
    assert math.isclose(
        sums.positive_sum - sums.negative_sum, math.fsum(rewards), rel_tol=1e-9, abs_tol=1e-6
    )
    assert math.isclose(
        sums.squares_sum, math.fsum(r * r for r in rewards), rel_tol=1e-9, abs_tol=1e-6
    )
    assert sums.nonbinary == sum(1 for r in rewards if r not in (0.0, 1.0))
