"""service/rollouts/gates.py: a step's and the shadow phase's verdict on the candidate,
from experiment results made by the real experiments code."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.experiments.comparisons import Comparison, compare
from service.experiments.latency_quantiles import histogram_quantile
from service.experiments.results import (
    ExperimentResult,
    ExperimentWindow,
    VersionWindow,
    experiment_result,
)
from service.experiments.reward_stats import RewardSummary
from service.rollouts.gates import (
    ERROR_RATE,
    P99_RATIO,
    REWARD,
    SHADOW_AGREEMENT,
    SHADOW_ERRORS,
    ControlFigures,
    Gates,
    GateVerdict,
    Matchup,
    Outcome,
    evaluate,
    evaluate_shadow,
)
from tests.unit.rollout_results import binary, latency, outcomes, step_result

DEFAULT_GATES = Gates()
FAST = settings(max_examples=150, deadline=None, database=None, derandomize=True)


MATCHUP = Matchup(candidate="Staging", candidate_version=7, control="Production")


def judge(result: ExperimentResult, gates: Gates = DEFAULT_GATES, **options: Any) -> GateVerdict:
    return evaluate(gates, result, MATCHUP, **({"min_requests": 100} | options))


def judge_shadow(
    result: ExperimentResult, gates: Gates = DEFAULT_GATES, **options: Any
) -> GateVerdict:
    where = {"min_requests": 100, "min_agreement": 0.95} | options
    return evaluate_shadow(gates, result, MATCHUP, **where)


# --- waiting ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"candidate_requests": 0}, "Staging v7: 0 of 100 requests"),
        ({"candidate_requests": 99}, "Staging v7: 99 of 100 requests"),
        ({"control_requests": 0}, "control Production: 0 of 100 requests"),
        ({"control_requests": 42}, "control Production: 42 of 100 requests"),
        # the candidate target's previous version served plenty: it does not count
        ({"candidate_requests": 0, "older_candidate": True}, "Staging v7: 0 of 100 requests"),
    ],
)
def test_waits_for_the_minimum_requests_on_both_sides(changes: dict[str, Any], reason: str) -> None:
    verdict = judge(step_result(**changes))
    assert verdict.outcome is Outcome.WAITING
    assert verdict.reason == reason
    assert (verdict.failed, verdict.control) == ((), None)


def test_waits_even_when_the_few_requests_all_failed() -> None:
    verdict = judge(step_result(candidate_requests=50, candidate_errors=50))
    assert verdict.outcome is Outcome.WAITING


def test_the_minimum_is_inclusive() -> None:
    verdict = judge(step_result(candidate_requests=100, control_requests=100))
    assert verdict.outcome is Outcome.PASSED


# --- passing and the figures --------------------------------------------------------


def test_a_candidate_like_the_control_passes_with_its_figures() -> None:
    verdict = judge(step_result(control_errors=2, candidate_errors=3))
    assert verdict.outcome is Outcome.PASSED
    assert verdict.reason == "every gate passed"
    figures = verdict.figures
    assert figures["candidate_requests"] == figures["control_requests"] == 1000
    assert figures["control_source"] == "live"
    assert figures["candidate_error_rate"] == 0.003
    assert figures["control_error_rate"] == 0.002
    assert figures["error_rate_increase"] == pytest.approx(0.001)
    assert figures["candidate_p99"] == figures["control_p99"] == pytest.approx(0.0995)
    assert figures["p99_ratio"] == 1.0
    assert figures["reward_undefined"] == "no feedback for the control"
    p99 = figures["control_p99"]
    assert isinstance(p99, float)
    assert verdict.control == ControlFigures(1000, 0.002, p99, RewardSummary())


# --- the error-rate gate ------------------------------------------------------------


@pytest.mark.parametrize(
    ("control_errors", "candidate_errors", "outcome"),
    [
        (0, 10, Outcome.PASSED),  # +0.01 exactly: at the limit, not over it
        (0, 11, Outcome.FAILED),
        (5, 15, Outcome.PASSED),
        (5, 16, Outcome.FAILED),
        (50, 0, Outcome.PASSED),  # fewer errors than the control
        (0, 50, Outcome.FAILED),  # 5 % of inputs failing
    ],
)
def test_error_rate_increase_is_absolute(
    control_errors: int, candidate_errors: int, outcome: Outcome
) -> None:
    verdict = judge(step_result(control_errors=control_errors, candidate_errors=candidate_errors))
    assert verdict.outcome is outcome
    assert verdict.failed == ((ERROR_RATE,) if outcome is Outcome.FAILED else ())


def test_a_failed_error_gate_says_its_figure() -> None:
    verdict = judge(step_result(candidate_errors=50))
    assert verdict.reason == "failed: error rate +0.05"
    assert verdict.figures["error_rate_increase"] == 0.05


@FAST
@given(
    control_n=st.integers(0, 400),
    control_errors=st.integers(0, 400),
    candidate_n=st.integers(0, 400),
    candidate_errors=st.integers(0, 400),
    limit=st.sampled_from([0.0, 0.01, 0.05, 0.5]),
)
def test_error_gate_agrees_with_the_counts(
    control_n: int, control_errors: int, candidate_n: int, candidate_errors: int, limit: float
) -> None:
    control_errors, candidate_errors = (
        min(control_errors, control_n),
        min(candidate_errors, candidate_n),
    )
    result = step_result(
        control_requests=control_n,
        control_errors=control_errors,
        candidate_requests=candidate_n,
        candidate_errors=candidate_errors,
    )
    verdict = judge(result, Gates(max_error_rate_increase=limit), min_requests=50)
    if control_n < 50 or candidate_n < 50:
        assert verdict.outcome is Outcome.WAITING
    elif candidate_errors / candidate_n - control_errors / control_n > limit:
        assert (verdict.outcome, verdict.failed) == (Outcome.FAILED, (ERROR_RATE,))
    else:
        assert verdict.outcome is Outcome.PASSED


# --- the p99 gate -------------------------------------------------------------------


def test_a_three_times_slower_candidate_fails_the_p99_gate() -> None:
    verdict = judge(step_result(control_seconds=0.04, candidate_seconds=0.12))
    assert (verdict.outcome, verdict.failed) == (Outcome.FAILED, (P99_RATIO,))
    candidate_p99 = histogram_quantile(0.99, latency(1000, 0.12))
    control_p99 = histogram_quantile(0.99, latency(1000, 0.04))
    assert candidate_p99 is not None and control_p99 is not None
    assert verdict.figures["candidate_p99"] == candidate_p99
    assert verdict.figures["control_p99"] == control_p99
    assert verdict.figures["p99_ratio"] == candidate_p99 / control_p99
    assert verdict.reason == "failed: p99 4.995x the control's"


def test_p99_ratio_at_its_limit_passes() -> None:
    result = step_result(control_seconds=0.04, candidate_seconds=0.12)
    ratio = judge(result).figures["p99_ratio"]
    assert isinstance(ratio, float)
    assert judge(result, Gates(max_p99_ratio=ratio)).outcome is Outcome.PASSED
    assert judge(result, Gates(max_p99_ratio=ratio * 0.999)).outcome is Outcome.FAILED


def test_faster_candidate_passes() -> None:
    verdict = judge(step_result(control_seconds=0.4, candidate_seconds=0.01))
    assert verdict.outcome is Outcome.PASSED
    assert float(verdict.figures["p99_ratio"] or 0) < 0.1


def test_unknown_p99_skips_the_gate() -> None:
    window = ExperimentWindow(
        "churn",
        "Production",
        [
            VersionWindow("Production", 3, outcomes=outcomes(500, 0)),  # no latency buckets
            VersionWindow("Staging", 7, outcomes=outcomes(500, 0), latency=latency(500, 9.0)),
        ],
    )
    verdict = judge(experiment_result(window))
    assert verdict.outcome is Outcome.PASSED
    assert verdict.figures["control_p99"] is None
    assert verdict.figures["p99_ratio"] is None


# --- the reward gate ----------------------------------------------------------------


def test_a_significantly_worse_reward_fails() -> None:
    control, candidate = binary(500, 1000), binary(420, 1000)
    verdict = judge(step_result(control_rewards=control, candidate_rewards=candidate))
    assert (verdict.outcome, verdict.failed) == (Outcome.FAILED, (REWARD,))
    comparison = compare(control, candidate)
    assert isinstance(comparison, Comparison)
    assert verdict.figures["reward_test"] == "two_proportions"
    assert verdict.figures["reward_difference"] == pytest.approx(-0.08)
    assert verdict.figures["reward_low"] == comparison.interval.low
    assert verdict.figures["reward_high"] == comparison.interval.high
    assert float(verdict.figures["reward_high"] or 0) < 0
    assert float(verdict.figures["p_value"] or 1) < 0.001
    assert verdict.reason == "failed: reward -0.08 (significantly worse)"


@pytest.mark.parametrize(
    ("control", "candidate"),
    [
        (binary(500, 1000), binary(480, 1000)),  # worse, but not significantly
        (binary(500, 1000), binary(580, 1000)),  # significantly better
        (binary(50, 100), binary(5, 10)),  # too few to say
    ],
)
def test_a_reward_not_significantly_worse_passes(
    control: RewardSummary, candidate: RewardSummary
) -> None:
    verdict = judge(step_result(control_rewards=control, candidate_rewards=candidate))
    assert verdict.outcome is Outcome.PASSED
    assert float(verdict.figures["reward_high"] or 0) >= 0


def test_the_reward_gate_can_be_turned_off() -> None:
    result = step_result(control_rewards=binary(500, 1000), candidate_rewards=binary(300, 1000))
    assert judge(result, Gates(reward_not_worse=False)).outcome is Outcome.PASSED
    assert judge(result).failed == (REWARD,)


def test_continuous_rewards_use_welch() -> None:
    control = RewardSummary.from_values([2.0, 2.5, 3.0, 2.2, 2.8] * 40)
    candidate = RewardSummary.from_values([1.0, 1.5, 2.0, 1.2, 1.8] * 40)
    verdict = judge(step_result(control_rewards=control, candidate_rewards=candidate))
    assert verdict.figures["reward_test"] == "welch"
    assert verdict.failed == (REWARD,)


def test_one_side_without_feedback_skips_the_reward_gate() -> None:
    verdict = judge(step_result(control_rewards=binary(500, 1000)))
    assert verdict.outcome is Outcome.PASSED
    assert verdict.figures["reward_undefined"] == "no feedback for the candidate"


def test_every_failed_gate_is_listed_in_order() -> None:
    result = step_result(
        candidate_errors=30,
        control_seconds=0.04,
        candidate_seconds=0.4,
        control_rewards=binary(500, 1000),
        candidate_rewards=binary(400, 1000),
    )
    verdict = judge(result)
    assert verdict.failed == (ERROR_RATE, P99_RATIO, REWARD)
    assert verdict.reason.count(", ") == 2


# --- a step without control traffic: the reference ----------------------------------

REFERENCE = ControlFigures(requests=800, error_rate=0.002, p99=0.0995, rewards=binary(400, 800))


def test_the_reference_stands_in_for_a_control_without_traffic() -> None:
    result = step_result(control_requests=0, candidate_errors=3)
    assert judge(result).outcome is Outcome.WAITING  # nothing live to compare with
    verdict = judge(result, reference=REFERENCE)
    assert verdict.outcome is Outcome.PASSED
    assert verdict.figures["control_source"] == "reference"
    assert verdict.figures["control_requests"] == 800
    assert verdict.figures["control_error_rate"] == 0.002
    assert verdict.control is None  # nothing new to keep


def test_the_reference_is_judged_like_a_live_control() -> None:
    slow = judge(step_result(control_requests=0, candidate_seconds=0.4), reference=REFERENCE)
    assert slow.failed == (P99_RATIO,)
    errors = judge(step_result(control_requests=0, candidate_errors=13), reference=REFERENCE)
    assert errors.failed == (ERROR_RATE,)
    worse = binary(300, 800)
    rewards = judge(step_result(control_requests=0, candidate_rewards=worse), reference=REFERENCE)
    assert rewards.failed == (REWARD,)
    expected = compare(REFERENCE.rewards, worse)
    assert isinstance(expected, Comparison)
    assert rewards.figures["p_value"] == expected.p_value


def test_a_reference_ignores_leftover_control_rows() -> None:
    result = step_result(control_requests=5, control_errors=5)
    verdict = judge(result, reference=REFERENCE)
    assert verdict.figures["control_error_rate"] == 0.002


# --- the shadow phase ---------------------------------------------------------------


def shadow_result(
    agree: int, disagree: int = 0, error: int = 0, dropped: int = 0
) -> ExperimentResult:
    counts = {"agree": agree, "disagree": disagree, "error": error, "dropped": dropped}
    return step_result(candidate_requests=0, shadow={k: v for k, v in counts.items() if v})


def test_shadow_waits_for_mirrored_answers() -> None:
    verdict = judge_shadow(shadow_result(60, 10, 5, dropped=500))  # dropped ones never count
    assert verdict.outcome is Outcome.WAITING
    assert verdict.reason == "Staging v7: 75 of 100 mirrored requests"
    assert judge_shadow(step_result(candidate_requests=0)).outcome is Outcome.WAITING


def test_shadow_passes_on_agreement() -> None:
    verdict = judge_shadow(shadow_result(196, 4))
    assert verdict.outcome is Outcome.PASSED
    assert verdict.figures["shadow_agreement"] == 0.98
    assert verdict.figures["shadow_requests"] == 200
    assert verdict.control is not None and verdict.control.requests == 1000


def test_shadow_agreement_below_the_threshold_fails() -> None:
    verdict = judge_shadow(shadow_result(180, 20))
    assert (verdict.outcome, verdict.failed) == (Outcome.FAILED, (SHADOW_AGREEMENT,))
    assert verdict.reason == "failed: shadow agreement 0.9"
    assert judge_shadow(shadow_result(190, 10)).outcome is Outcome.PASSED  # 0.95: at the limit


def test_shadow_errors_fail_the_error_gate() -> None:
    verdict = judge_shadow(shadow_result(190, 0, 10))
    assert verdict.failed == (SHADOW_ERRORS,)
    assert verdict.figures["shadow_error_rate"] == 0.05
    assert verdict.figures["shadow_agreement"] == 1.0


def test_shadow_that_only_errs_fails_both() -> None:
    verdict = judge_shadow(shadow_result(0, 0, 150))
    assert verdict.failed == (SHADOW_AGREEMENT, SHADOW_ERRORS)
    assert verdict.figures["shadow_agreement"] is None
    assert verdict.reason == "failed: shadow agreement none, shadow error rate +1"


def test_shadow_needs_the_control_too() -> None:
    result = step_result(candidate_requests=0, control_requests=10, shadow={"agree": 500})
    assert judge_shadow(result).reason == "control Production: 10 of 100 requests"


def test_gate_names_are_distinct_words() -> None:
    names = [ERROR_RATE, P99_RATIO, REWARD, SHADOW_AGREEMENT, SHADOW_ERRORS]
    assert len(set(names)) == len(names)
    assert all(name.isidentifier() for name in names)
