"""Rewards since the bandit started: per arm from counter samples (minus a baseline),
one gateway's (baseline per bandit id, none after a restart), the fleet's (the
queries' window starts at started_at)."""

from __future__ import annotations

from service.experiments import metric_names as names
from service.experiments.baseline_store import BaselineStore
from service.experiments.promql import Query
from service.experiments.reward_stats import RewardSummary
from service.experiments.window import Sample
from service.rollouts.arm_rewards import arm_rewards
from service.rollouts.bandit_config import BanditPlan
from service.rollouts.bandit_rewards import FleetBanditRewards, GatewayBanditRewards

MODEL = "m"
PLAN = BanditPlan(arms=("Production", "Staging"), started_at=100.0, id="b1")


def rewards(
    target: str, version: int, count: float, ones: float, model: str = MODEL
) -> list[Sample]:
    labels = {"model": model, "target": target, "version": str(version)}
    return [
        Sample(names.REWARD_COUNT, labels, count),
        Sample(names.REWARD_POSITIVE_SUM, labels, ones),
        Sample(names.REWARD_SQUARES_SUM, labels, ones),
        Sample(names.REWARD_NONBINARY, labels, 0.0),
    ]


def test_arm_rewards_add_up_versions_and_subtract_the_start() -> None:
    end = [
        *rewards("Production", 1, 10, 4),
        *rewards("Staging", 2, 6, 3),
        *rewards("Staging", 3, 5, 5),
    ]
    end += rewards("Production", 1, 99, 99, model="other")
    start = [*rewards("Production", 1, 4, 1), *rewards("Staging", 2, 6, 3)]
    assert arm_rewards(MODEL, end, start) == {
        "Production": RewardSummary(6, 3.0, 3.0),
        "Staging": RewardSummary(5, 5.0, 5.0),  # version 2 counted nothing since
    }
    assert arm_rewards(MODEL, end)["Staging"] == RewardSummary(11, 8.0, 8.0)


def test_arm_rewards_after_a_counter_reset_take_the_end() -> None:
    end, start = rewards("Staging", 2, 3, 1), rewards("Staging", 2, 50, 20)
    assert arm_rewards(MODEL, end, start) == {"Staging": RewardSummary(3, 1.0, 1.0)}


class Counters:
    """A gateway's counters as the test sets them."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []

    def read(self, model: str) -> list[Sample]:
        return list(self.samples)


def test_gateway_counts_from_its_first_reading_of_each_bandit(tmp_path) -> None:
    counters = Counters()
    counters.samples = rewards("Production", 1, 40, 20)  # before the bandit
    source = GatewayBanditRewards(counters.read, BaselineStore(str(tmp_path)))
    assert source(MODEL, PLAN) == {}
    counters.samples = [*rewards("Production", 1, 50, 25), *rewards("Staging", 2, 8, 6)]
    assert source(MODEL, PLAN) == {
        "Production": RewardSummary(10, 5.0, 5.0),
        "Staging": RewardSummary(8, 6.0, 6.0),
    }
    # The baseline is kept in the folder: another worker (or a restart) counts alike.
    again = GatewayBanditRewards(counters.read, BaselineStore(str(tmp_path)))
    assert again(MODEL, PLAN)["Production"].count == 10
    # A new bandit (a new id) starts a new window.
    restarted = BanditPlan(arms=PLAN.arms, started_at=200.0, id="b2")
    assert source(MODEL, restarted) == {}


def test_gateway_started_after_the_bandit_counts_everything() -> None:
    counters = Counters()
    counters.samples = rewards("Staging", 2, 7, 7)
    source = GatewayBanditRewards(counters.read, counting_since=PLAN.started_at + 1)
    assert source(MODEL, PLAN) == {"Staging": RewardSummary(7, 7.0, 7.0)}


def test_a_baseline_older_than_the_counters_is_not_subtracted(tmp_path) -> None:
    counters = Counters()
    counters.samples = rewards("Staging", 2, 30, 10)
    GatewayBanditRewards(counters.read, BaselineStore(str(tmp_path), clock=lambda: 150.0))(
        MODEL, PLAN
    )
    counters.samples = rewards("Staging", 2, 40, 12)  # restarted at 160: all new
    source = GatewayBanditRewards(counters.read, BaselineStore(str(tmp_path)), counting_since=160)
    assert source(MODEL, PLAN) == {"Staging": RewardSummary(40, 12.0, 12.0)}


def test_fleet_queries_the_window_since_the_bandit_started() -> None:
    asked: list[tuple[str, float]] = []

    def samples(query: Query, model: str, at: float) -> list[Sample]:
        asked.append((query.promql, at))
        found = rewards("Staging", 2, 12, 9) + rewards("Production", 1, 10, 5)
        return [s for s in found if s.name == query.metric]

    source = FleetBanditRewards(samples, clock=lambda: 130.2)
    assert source(MODEL, PLAN) == {
        "Staging": RewardSummary(12, 9.0, 9.0),
        "Production": RewardSummary(10, 5.0, 5.0),
    }
    assert len(asked) == len(names.REWARD_SUMS)
    assert all("offset 31s" in promql and at == 130.2 for promql, at in asked)
    assert all("sum by (target, version)" in promql for promql, _ in asked)
    assert FleetBanditRewards(samples, clock=lambda: 100.0)(MODEL, PLAN) == {}
