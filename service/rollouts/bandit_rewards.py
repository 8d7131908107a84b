"""Where a bandit's rewards come from: ``rewards(model, config)`` -> each arm's
RewardSummary since the bandit started (``config.started_at``), not since the last
policy change: every bandit rewrite is a policy change, and the experiment endpoint's
window restarts at each one.

- ``FleetBanditRewards``: Prometheus's HTTP API, what every counter of every replica
  counted from ``started_at`` to now (service/experiments/promql.py's exact queries).
- ``GatewayBanditRewards``: one gateway's own counters (all its workers), minus a
  baseline reading taken the first time the bandit is seen (kept per bandit id in
  memory, or in a ``BaselineStore`` folder shared by the workers and kept across
  restarts). Rewards between ``started_at`` and that first reading are not counted (at
  most one controller interval); a gateway whose counters started after the bandit
  did (a restart) counts everything it has, with no baseline.

Failures are the reader's: ``FleetUnreadable`` (one line) from Prometheus.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from service.experiments import metric_names as names
from service.experiments.baselines import Baseline
from service.experiments.promql import Query, counted
from service.experiments.reward_stats import RewardSummary
from service.experiments.window import Sample
from service.rollouts.arm_rewards import arm_rewards
from service.rollouts.bandit_config import BanditPlan


class BanditRewards(Protocol):
    """What a controller calls every interval."""

    def __call__(self, model: str, config: BanditPlan) -> Mapping[str, RewardSummary]: ...


class Baselines(Protocol):
    """Readings kept by key, first writer wins (service/experiments/baseline_store.py's
    ``BaselineStore`` is one; give it a folder of its own, as it keeps one per model)."""

    def record(self, model: str, policy: str, take: Callable[[], Iterable[Sample]]) -> Baseline: ...


class MemoryBaselines:
    """``Baselines`` of this process only: lost at a restart (then the window restarts)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._kept: dict[str, Baseline] = {}

    def record(self, model: str, policy: str, take: Callable[[], Iterable[Sample]]) -> Baseline:
        kept = self._kept.get(model)
        if kept is None or kept.policy != policy:
            kept = self._kept[model] = Baseline(model, policy, self._clock(), tuple(take()))
        return kept


def baseline_key(config: BanditPlan) -> str:
    """What a bandit's baseline is kept under: a new start is a new window."""
    return f"bandit:{config.id}"


class GatewayBanditRewards:
    """One gateway's rewards since the bandit started (module's text). ``read`` gives
    the model's experiment series summed over the workers (gateway_samples.py's
    ``gateway_samples``, or a scrape of /metrics); ``counting_since`` is when those
    counters started (the gateway's start; 0 when unknown: a baseline is always used)."""

    def __init__(
        self,
        read: Callable[[str], Sequence[Sample]],
        baselines: Baselines | None = None,
        counting_since: float = 0.0,
    ) -> None:
        self._read = read
        self._baselines = baselines or MemoryBaselines()
        self._counting_since = counting_since

    def __call__(self, model: str, config: BanditPlan) -> Mapping[str, RewardSummary]:
        end = self._read(model)
        if self._counting_since >= config.started_at:
            return arm_rewards(model, end)  # every count came after the start
        baseline = self._baselines.record(model, baseline_key(config), lambda: end)
        if baseline.taken_at < self._counting_since:  # taken before the counters restarted
            return arm_rewards(model, end)
        return arm_rewards(model, end, baseline.samples)


class FleetBanditRewards:
    """The fleet's rewards since the bandit started, from Prometheus. ``samples`` is
    ``PrometheusReader(url, timeout).samples`` (``from_url``)."""

    def __init__(
        self,
        samples: Callable[[Query, str, float], list[Sample]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._samples = samples
        self._clock = clock

    @classmethod
    def from_url(cls, url: str, timeout: float) -> FleetBanditRewards:
        from service.experiments.prometheus_reader import PrometheusReader

        return cls(PrometheusReader(url, timeout).samples)

    def __call__(self, model: str, config: BanditPlan) -> Mapping[str, RewardSummary]:
        now = self._clock()
        if now <= config.started_at:
            return {}
        seconds = max(1, math.ceil(now - config.started_at))
        by = (names.TARGET, names.VERSION)
        found = [
            sample
            for metric in names.REWARD_SUMS
            for sample in self._samples(counted(metric, by, model, seconds), model, now)
        ]
        return arm_rewards(model, found)
