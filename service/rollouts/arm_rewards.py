"""Each arm's rewards since the bandit started, from counter samples: what Thompson
sampling weighs (service/rollouts/bandit_tick.py).

Pure. An arm is a target, so the rewards of every version that answered for it add
up. Two ways to the window, one function: Prometheus's answers are already what each
counter counted since the start (``end`` alone); a gateway's own counters count since
the gateway started, so a baseline reading taken when the bandit started is
subtracted (``start``), per (target, version), a counter reset (a restart) taking the
end alone as window.py does. That baseline is what keeps the window from restarting at
every policy rewrite, as the experiment endpoint's does.
"""

from __future__ import annotations

from collections.abc import Iterable

from service.experiments.reward_stats import RewardSummary
from service.experiments.window import Sample, VersionTotals, read_samples, reward_summary


def arm_rewards(
    model: str, end: Iterable[Sample], start: Iterable[Sample] = ()
) -> dict[str, RewardSummary]:
    """Rewards by target text between the ``start`` and ``end`` readings of ``model``'s
    counters (all of ``end`` without a start); targets without rewards are left out."""
    after, before = read_samples(end, model), read_samples(start, model)
    out: dict[str, RewardSummary] = {}
    for (target, version), totals in after.versions.items():
        earlier = before.versions.get((target, version), VersionTotals())
        window = reward_summary(totals.rewards).since(reward_summary(earlier.rewards))
        if window.count:
            out[target] = out.get(target, RewardSummary()) + window
    return out
