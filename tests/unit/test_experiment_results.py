"""Experiment results: every version's figures and its comparison with the control, as
stable JSON, from plain per-version numbers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from service.experiments.comparisons import compare
from service.experiments.intervals import mean_interval
from service.experiments.results import ExperimentWindow, VersionWindow, experiment_result
from service.experiments.reward_stats import RewardSummary

INF = math.inf
LATENCY = {0.1: 10.0, 0.5: 30.0, 1.0: 40.0, INF: 40.0}
ROW_KEYS = {
    "target",
    "version",
    "control",
    "requests",
    "errors",
    "error_rate",
    "outcomes",
    "latency_seconds",
    "feedback",
    "reward",
    "vs_control",
    "shadow",
}
COMPARISON_KEYS = {"test", "difference", "low", "high", "statistic", "df", "p_value", "undefined"}


def binary(k: int, n: int) -> RewardSummary:
    return RewardSummary.from_values([1.0] * k + [0.0] * (n - k))


def ab_window() -> ExperimentWindow:
    return ExperimentWindow(
        model="churn",
        control="Production",
        start=1_700_000_000.0,
        end=1_700_003_600.0,
        versions=[
            VersionWindow(
                "Production",
                3,
                outcomes={"success": 990, "error": 4, "model_error": 6},
                latency=LATENCY,
                rewards=binary(400, 800),
            ),
            VersionWindow(
                "Staging",
                4,
                outcomes={"success": 1000},
                latency={0.1: 40.0, 0.5: 40.0, INF: 40.0},
                rewards=binary(460, 800),
            ),
            VersionWindow(
                "@challenger",
                5,
                shadow={"agree": 45, "disagree": 5, "error": 2, "dropped": 1},
            ),
        ],
    )


def test_each_version_s_figures() -> None:
    production, staging, challenger = experiment_result(ab_window()).targets
    assert (production.requests, production.errors, production.error_rate) == (1000, 10, 0.01)
    assert (staging.requests, staging.errors, staging.error_rate) == (1000, 0, 0.0)
    assert production.latency_p50 == pytest.approx(0.3)
    assert production.latency_p99 == pytest.approx(0.98)
    assert staging.latency_p50 == pytest.approx(0.05)
    assert production.rewards.count == 800 and production.rewards.mean() == 0.5
    assert production.reward_interval == mean_interval(binary(400, 800))
    assert challenger.shadow_agreement == 0.9  # 45 of 50 compared; errors, drops apart


def test_each_candidate_is_compared_with_the_control() -> None:
    result = experiment_result(ab_window())
    production, staging, challenger = result.targets
    assert (result.control, result.control_version) == ("Production", 3)
    assert production.is_control and production.vs_control is None
    assert staging.vs_control == compare(binary(400, 800), binary(460, 800))
    # The same figures as scipy on the 2x2 table of the raw rewards.
    _, p_value, _, _ = stats.chi2_contingency([[400, 400], [460, 340]], correction=False)
    body = result.to_json()["targets"][1]["vs_control"]
    assert body["test"] == "two_proportions"
    assert math.isclose(body["p_value"], p_value, rel_tol=1e-9)
    assert math.isclose(body["difference"], 0.075, rel_tol=1e-12)
    assert body["low"] < 0.075 < body["high"]
    assert challenger.to_json()["vs_control"]["undefined"] == "no feedback for the candidate"


def test_continuous_rewards_are_compared_with_welch() -> None:
    rng = np.random.default_rng(3)
    control, candidate = rng.random(300), rng.random(200) + 0.1
    window = ExperimentWindow(
        "m",
        "Production",
        [
            VersionWindow("Production", 1, rewards=RewardSummary.from_values(control.tolist())),
            VersionWindow("Staging", 2, rewards=RewardSummary.from_values(candidate.tolist())),
        ],
    )
    body = experiment_result(window, confidence=0.9).to_json()
    expected = stats.ttest_ind(candidate, control, equal_var=False)
    interval = expected.confidence_interval(0.9)
    vs_control = body["targets"][1]["vs_control"]
    assert body["confidence"] == 0.9 and vs_control["test"] == "welch"
    assert math.isclose(vs_control["p_value"], expected.pvalue, rel_tol=1e-9)
    assert math.isclose(vs_control["low"], interval.low, rel_tol=1e-9)
    assert math.isclose(vs_control["high"], interval.high, rel_tol=1e-9)
    assert body["targets"][0]["reward"]["method"] == "student_t"


def test_the_control_is_its_target_s_newest_version() -> None:
    window = ExperimentWindow(
        "m",
        "Production",
        [
            VersionWindow("Production", 3, rewards=binary(10, 40)),
            VersionWindow("Production", 4, rewards=binary(30, 40)),
        ],
    )
    older, newer = experiment_result(window).targets
    assert newer.is_control and not older.is_control
    assert older.vs_control == compare(binary(30, 40), binary(10, 40))


def test_without_the_control_in_the_window_nothing_is_compared() -> None:
    window = ExperimentWindow("m", "Production", [VersionWindow("Staging", 2)])
    result = experiment_result(window)
    assert result.control_version is None
    assert result.to_json()["targets"][0]["vs_control"]["undefined"] == (
        "no version of the control Production in the window"
    )


def test_the_json_has_the_same_keys_with_or_without_data() -> None:
    body = experiment_result(ab_window()).to_json()
    assert set(body) == {"model", "confidence", "window", "control", "targets"}
    assert body["window"] == {"start": 1_700_000_000.0, "end": 1_700_003_600.0}
    assert body["control"] == {"target": "Production", "version": 3}
    production, staging, challenger = body["targets"]
    for row in (production, staging, challenger):
        assert set(row) == ROW_KEYS
        assert set(row["reward"]) == {"mean", "low", "high", "method", "undefined"}
        assert set(row["shadow"]) == {"agree", "disagree", "error", "dropped", "agreement"}
        assert set(row["latency_seconds"]) == {"p50", "p99"}
    assert set(staging["vs_control"]) == set(challenger["vs_control"]) == COMPARISON_KEYS
    # A version with nothing yet: nulls, and why the interval is missing.
    assert challenger["requests"] == 0 and challenger["error_rate"] is None
    assert challenger["latency_seconds"] == {"p50": None, "p99": None}
    assert challenger["reward"]["mean"] is None
    assert challenger["reward"]["undefined"] == "fewer than 2 rewards"
    assert production["outcomes"] == {"error": 4, "model_error": 6, "success": 990}
    assert production["reward"]["method"] == "wilson"
    # Plain JSON: no NaN or infinity anywhere.
    assert json.loads(json.dumps(body, allow_nan=False)) == body
