"""The window layer: counter readings at a window's start and end (here from real
prometheus_client counters, named as the gateway names them) give exactly the window's
counts, rewards and latency buckets; resets, Prometheus's extrapolated counts, shadow
attribution and the rows' order."""

from __future__ import annotations

import math
from typing import cast

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from service.experiments import metric_names as names
from service.experiments.gateway_samples import collected_samples
from service.experiments.reward_stats import RewardSummary
from service.experiments.window import Sample, build_window, counts_since, reward_summary
from service.ops.metrics import LATENCY_BUCKETS

INF = math.inf
LABELS = ["model", "target", "version"]


class Gateway:
    """The experiment's counters in a registry of their own, as service/ops/metrics.py
    and the feedback intake define them."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("stageserve_requests", "", [*LABELS, "outcome"], registry=r)
        self.latency = Histogram(
            "stageserve_request_duration_seconds", "", LABELS, buckets=LATENCY_BUCKETS, registry=r
        )
        self.shadow = Counter(
            "stageserve_shadow_requests",
            "",
            ["model", "target", "shadow_target", "outcome"],
            registry=r,
        )
        self.loaded = Gauge("stageserve_loaded_version", "", ["model", "target"], registry=r)
        self.rewards = {
            what: Counter(f"stageserve_reward_{what}", "", LABELS, registry=r)
            for what in ("count", "positive_sum", "negative_sum", "squares_sum", "nonbinary")
        }

    def answer(self, target: str, version: int, seconds: float, outcome: str = "success") -> None:
        self.requests.labels("m", target, str(version), outcome).inc()
        if outcome == "success":
            self.latency.labels("m", target, str(version)).observe(seconds)

    def reward(self, target: str, version: int, value: float) -> None:
        labels = ("m", target, str(version))
        self.rewards["count"].labels(*labels).inc()
        if value > 0:
            self.rewards["positive_sum"].labels(*labels).inc(value)
        if value < 0:
            self.rewards["negative_sum"].labels(*labels).inc(-value)
        self.rewards["squares_sum"].labels(*labels).inc(value * value)
        if value not in (0.0, 1.0):
            self.rewards["nonbinary"].labels(*labels).inc()

    def read(self) -> list[Sample]:
        return collected_samples(self.registry, "m")


def test_every_metric_name_read_is_one_the_gateway_writes() -> None:
    """Against service/ops/metrics.py itself: the reward counters once they exist there."""
    from prometheus_client import REGISTRY

    from service.ops.metrics import get_metrics

    metrics = get_metrics()
    metrics.requests.labels("names-check", "A", "1", "success").inc()
    metrics.request_duration.labels("names-check", "A", "1").observe(0.1)
    metrics.shadow.labels("names-check", "A", "B", "agree").inc()
    metrics.loaded_version.labels("names-check", "B").set(2)
    expected = {names.REQUESTS, names.LATENCY_BUCKETS, names.SHADOW, names.LOADED_VERSION}
    rewards = ("reward_count", "reward_positive_sum", "reward_negative_sum",
               "reward_squares_sum", "reward_nonbinary")  # fmt: skip
    for field in rewards:
        getattr(metrics, field).labels("names-check", "A", "1").inc()
    expected |= set(names.REWARD_SUMS)
    seen = {sample.name for sample in collected_samples(REGISTRY, "names-check")}
    assert expected <= seen


def test_the_window_is_exactly_what_happened_between_the_readings() -> None:
    gateway = Gateway()
    for _ in range(5):  # before the window: not in it
        gateway.answer("Production", 1, 0.003)
    gateway.reward("Production", 1, 1.0)
    gateway.requests.labels("other-model", "Production", "1", "success").inc(7)
    start = gateway.read()
    for _ in range(3):
        gateway.answer("Production", 1, 0.02)
    gateway.answer("Production", 1, 0.02, "error")
    gateway.answer("Staging", 2, 0.3)
    gateway.answer("Staging", 2, 0.6)
    rewards = {("Production", 1): [1.0, 0.0, 1.0], ("Staging", 2): [0.25, -1.5]}
    for (target, version), values in rewards.items():
        for value in values:
            gateway.reward(target, version, value)

    window = build_window(
        "m", "Production", gateway.read(), start, start_time=10.0, end_time=20.0,
        order=("Production", "Staging"),
    )  # fmt: skip

    assert (window.model, window.control, window.start, window.end) == ("m", "Production", 10, 20)
    production, staging = window.versions
    assert (production.target, production.version) == ("Production", 1)
    assert production.outcomes == {"success": 3, "error": 1}
    assert staging.outcomes == {"success": 2}
    assert production.latency[0.025] == 3 and production.latency[0.01] == 0
    assert production.latency[INF] == 3
    assert staging.latency[0.25] == 0 and staging.latency[0.5] == 1 and staging.latency[INF] == 2
    for row in (production, staging):
        expected = RewardSummary.from_values(rewards[(row.target, row.version)])
        assert row.rewards == expected
    assert staging.rewards.mean() == pytest.approx(-0.625, abs=1e-15)
    assert not staging.rewards.is_binary() and production.rewards.is_binary()


def test_without_a_start_the_window_is_everything_counted() -> None:
    gateway = Gateway()
    gateway.answer("Staging", 3, 0.001)
    gateway.reward("Staging", 3, 1.0)
    (row,) = build_window("m", "Production", gateway.read()).versions
    assert row.outcomes == {"success": 1} and row.rewards == RewardSummary(1, 1.0, 1.0, 0)
    assert row.latency[0.001] == 1


def test_a_reset_counter_takes_the_end_reading_alone() -> None:
    before = Gateway()
    for _ in range(10):
        before.answer("Production", 1, 0.02)
        before.reward("Production", 1, 1.0)
    start = before.read()
    restarted = Gateway()  # the gateway restarted: its counters start again at zero
    for _ in range(4):
        restarted.answer("Production", 1, 0.2)
    restarted.reward("Production", 1, 0.0)
    (row,) = build_window("m", "Production", restarted.read(), start).versions
    assert row.outcomes == {"success": 4}
    assert row.latency[0.25] == 4 and row.latency[INF] == 4
    assert row.rewards == RewardSummary(1, 0.0, 0.0, 0)


def test_counts_since_is_a_difference_unless_a_counter_went_back() -> None:
    assert counts_since({"a": 5.0, "b": 2.0}, {"a": 3.0}) == {"a": 2.0, "b": 2.0}
    assert counts_since({"a": 5.0, "b": 2.0}, {"a": 3.0, "b": 4.0}) == {"a": 5.0, "b": 2.0}


def test_a_bucket_window_is_the_observations_since_its_start() -> None:
    start = {0.1: 4.0, 0.5: 6.0, 1.0: 6.0, INF: 6.0}
    end = {0.1: 10.0, 0.5: 30.0, 1.0: 40.0, INF: 40.0}
    assert counts_since(end, start) == {0.1: 6.0, 0.5: 24.0, 1.0: 34.0, INF: 34.0}
    assert counts_since(end, {}) == end  # no such histogram at the start


def test_a_reset_histogram_makes_the_window_the_new_snapshot() -> None:
    before_restart = {0.1: 50.0, 1.0: 90.0, INF: 100.0}
    after_restart = {0.1: 3.0, 1.0: 5.0, INF: 5.0}
    assert counts_since(after_restart, before_restart) == after_restart


def test_extrapolated_counts_are_rounded_and_the_mean_kept() -> None:
    # What Prometheus's increase() answers for 40 rewards of mean 0.55 seen over 99%
    # of the window: every series scaled by the same factor.
    factor = 1.0109
    sums = {
        names.REWARD_COUNT: 40 * factor,
        names.REWARD_POSITIVE_SUM: 22 * factor,
        names.REWARD_SQUARES_SUM: 22 * factor,
    }
    summary = reward_summary(sums)
    assert summary.count == 40 and summary.non_binary == 0
    assert summary.total == pytest.approx(22.0, rel=1e-12)
    assert summary.mean() == pytest.approx(0.55, rel=1e-12)
    samples = [
        Sample(names.REQUESTS, {"model": "m", "target": "A", "version": "1", "outcome": o}, v)
        for o, v in (("success", 99.6), ("error", 1.04))
    ]
    (row,) = build_window("m", "A", samples).versions
    assert row.outcomes == {"success": 100, "error": 1}


def test_shadow_counts_go_to_the_version_serving_the_shadow_target() -> None:
    gateway = Gateway()
    gateway.answer("Production", 1, 0.01)
    gateway.loaded.labels("m", "Staging").set(4)
    shadow = gateway.shadow.labels("m", "Production", "Staging", "agree")
    shadow.inc(3)
    start = gateway.read()
    shadow.inc(6)
    gateway.shadow.labels("m", "Production", "Staging", "disagree").inc(2)
    window = build_window("m", "Production", gateway.read(), start)
    # Production answered before the window only: no row (a version idle in the window).
    (staging,) = window.versions
    assert (staging.target, staging.version) == ("Staging", 4)
    assert staging.shadow == {"agree": 6, "disagree": 2} and staging.outcomes == {}


def test_a_version_with_nothing_in_the_window_has_no_row() -> None:
    gateway = Gateway()
    gateway.answer("Production", 1, 0.01)  # before the window: v1, then v2 took over
    start = gateway.read()
    gateway.answer("Production", 2, 0.01)
    window = build_window("m", "Production", gateway.read(), start)
    assert [(row.target, row.version) for row in window.versions] == [("Production", 2)]


def test_series_without_a_target_or_version_and_other_models_are_left_out() -> None:
    samples = [
        Sample(names.REQUESTS, {"model": "m", "target": "", "version": "", "outcome": "x"}, 3),
        Sample(names.REQUESTS, {"model": "n", "target": "A", "version": "1", "outcome": "x"}, 3),
        Sample(names.REQUESTS, {"model": "m", "target": "A", "version": "", "outcome": "x"}, 3),
    ]
    assert build_window("m", "A", samples).versions == ()


def test_rows_follow_the_policy_order_then_target_and_version() -> None:
    samples = [
        Sample(names.REQUESTS, {"model": "m", "target": t, "version": v, "outcome": "success"}, 1)
        for t, v in (("Staging", "2"), ("@b", "9"), ("Production", "3"), ("Production", "1"))
    ]
    rows = build_window("m", "Production", samples, order=("Production", "Staging")).versions
    assert [(r.target, r.version) for r in rows] == [
        ("Production", 1), ("Production", 3), ("Staging", 2), ("@b", 9)
    ]  # fmt: skip


def test_a_version_served_has_its_request_series_at_zero_for_increase() -> None:
    from registry_watcher.targets import parse_target
    from service.ops.worker_metrics import WorkerMetrics
    from tests.unit.metric_fakes import Metric, fake_metrics

    metrics = fake_metrics()
    requests, latency = cast(Metric, metrics.requests), cast(Metric, metrics.request_duration)
    worker = WorkerMetrics(metrics)
    worker.serving("m", parse_target("Staging"), None)
    assert not requests.series and not latency.series
    worker.serving("m", parse_target("Staging"), 4)
    assert list(requests.series) == [("m", "Staging", "4", "success")]
    assert list(latency.series) == [("m", "Staging", "4")]
    assert requests.of("m", "Staging", "4", "success") == 0
