"""The gates a candidate must pass at each step of a rollout, judged from the
experiment's results (service/experiments/results.py) of the candidate against the
control: pure, so a verdict is a function of the figures alone.

A step's gates: the error rate may rise by at most ``max_error_rate_increase``
(absolute: candidate minus control), the p99 latency may be at most
``max_p99_ratio`` times the control's, and, when both sides have feedback, the reward
must not be significantly worse (the difference's confidence interval, candidate
minus control, lying wholly below 0 fails). Both sides need ``min_requests`` before
anything is judged: until then the verdict is WAITING.

The shadow phase's gates: the candidate's answers to mirrored requests must agree with
the control's at least ``min_agreement`` of the time, and its shadow errors obey the
error-rate gate.

At a step that gives the control no traffic (100 %) there is nothing live to compare
with: the control's figures from the last step that measured them (a ``ControlFigures``
reference kept in the rollout's state) stand in.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from service.experiments.comparisons import Comparison, compare
from service.experiments.intervals import Undefined
from service.experiments.results import ExperimentResult, TargetResult
from service.experiments.reward_stats import RewardSummary
from service.traffic.shadow import AGREE, DISAGREE, ERROR

# Gate names, as a failed verdict lists them (and the decision tags say them).
ERROR_RATE = "error_rate"
P99_RATIO = "p99_ratio"
REWARD = "reward"
SHADOW_AGREEMENT = "shadow_agreement"
SHADOW_ERRORS = "shadow_errors"

Figure = float | int | str | None


class Outcome(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    WAITING = "waiting"  # not enough data yet


@dataclass(frozen=True)
class Gates:
    """Thresholds of a step's gates (see the module docstring)."""

    max_error_rate_increase: float = 0.01
    max_p99_ratio: float = 1.5
    reward_not_worse: bool = True


@dataclass(frozen=True)
class ControlFigures:
    """What the control did at a step: kept as the reference for a step without it."""

    requests: int
    error_rate: float
    p99: float | None
    rewards: RewardSummary = field(default_factory=RewardSummary)


@dataclass(frozen=True)
class GateVerdict:
    """PASSED, FAILED (``failed`` names the gates) or WAITING, the one-line reason, and
    the figures that decided it. ``control``: the control's live figures, when measured
    (to keep as the reference for a later step that gives it no traffic)."""

    outcome: Outcome
    reason: str
    failed: tuple[str, ...] = ()
    figures: Mapping[str, Figure] = field(default_factory=dict)
    control: ControlFigures | None = None


@dataclass(frozen=True)
class Matchup:
    """Which rows of a result are compared: ``candidate`` served by its pinned
    ``candidate_version`` (a previous version of that target does not count), against
    ``control`` served by its newest version in the result (as ``vs_control`` is)."""

    candidate: str
    candidate_version: int
    control: str

    def candidate_row(self, result: ExperimentResult) -> TargetResult | None:
        return _row(result, self.candidate, self.candidate_version)

    def control_row(self, result: ExperimentResult) -> TargetResult | None:
        return _row(result, self.control, result.control_version)


def control_figures(row: TargetResult) -> ControlFigures:
    return ControlFigures(
        requests=row.requests,
        error_rate=row.error_rate or 0.0,
        p99=row.latency_p99,
        rewards=row.rewards,
    )


def evaluate(
    gates: Gates,
    result: ExperimentResult,
    matchup: Matchup,
    *,
    min_requests: int,
    reference: ControlFigures | None = None,
) -> GateVerdict:
    """A step's verdict on the candidate against the control, or against ``reference``
    when given (a step that gives the control no traffic: its row is then ignored)."""
    row = matchup.candidate_row(result)
    if row is None or row.requests < min_requests:
        return _waiting(f"{matchup.candidate} v{matchup.candidate_version}", row, min_requests)
    live: ControlFigures | None = None
    if reference is None:
        control_row = matchup.control_row(result)
        if control_row is None or control_row.requests < min_requests:
            return _waiting(f"control {matchup.control}", control_row, min_requests)
        live = control_figures(control_row)
        comparison = row.vs_control
    else:
        comparison = compare(reference.rewards, row.rewards, result.confidence)
    versus = live or reference
    assert versus is not None
    figures: dict[str, Figure] = {
        "candidate_requests": row.requests,
        "control_requests": versus.requests,
        "control_source": "live" if live else "reference",
    }
    failed = _error_gate(gates, row.error_rate or 0.0, versus.error_rate, figures, ERROR_RATE)
    figures |= {"candidate_p99": row.latency_p99, "control_p99": versus.p99}
    ratio = _ratio(row.latency_p99, versus.p99)
    figures["p99_ratio"] = ratio
    if ratio is not None and ratio > gates.max_p99_ratio:
        failed.append(P99_RATIO)
    figures |= _reward_figures(comparison)
    if gates.reward_not_worse and _significantly_worse(comparison):
        failed.append(REWARD)
    return _verdict(failed, figures, live)


def evaluate_shadow(
    gates: Gates,
    result: ExperimentResult,
    matchup: Matchup,
    *,
    min_requests: int,
    min_agreement: float,
) -> GateVerdict:
    """The shadow phase's verdict: the candidate answers mirrored requests only, so its
    shadow counts are judged (agreement, errors) against the control's own error rate."""
    row = matchup.candidate_row(result)
    shadow = row.shadow if row else {}
    agree, disagree, errors = (shadow.get(k, 0) for k in (AGREE, DISAGREE, ERROR))
    answered = agree + disagree + errors
    if answered < min_requests:
        who = f"{matchup.candidate} v{matchup.candidate_version}"
        return GateVerdict(
            Outcome.WAITING, f"{who}: {answered} of {min_requests} mirrored requests"
        )
    control_row = matchup.control_row(result)
    if control_row is None or control_row.requests < min_requests:
        return _waiting(f"control {matchup.control}", control_row, min_requests)
    live = control_figures(control_row)
    agreement = agree / (agree + disagree) if agree + disagree else None
    figures: dict[str, Figure] = {"shadow_requests": answered, "control_requests": live.requests}
    figures |= {"shadow_agreement": agreement, "min_agreement": min_agreement}
    failed = [SHADOW_AGREEMENT] if agreement is None or agreement < min_agreement else []
    failed += _error_gate(gates, errors / answered, live.error_rate, figures, SHADOW_ERRORS)
    return _verdict(failed, figures, live)


# --- helpers ------------------------------------------------------------------------


def _row(result: ExperimentResult, target: str, version: int | None) -> TargetResult | None:
    for row in result.targets:
        if row.target == target and row.version == version:
            return row
    return None


def _waiting(who: str, row: TargetResult | None, min_requests: int) -> GateVerdict:
    served = row.requests if row else 0
    return GateVerdict(Outcome.WAITING, f"{who}: {served} of {min_requests} requests")


def _error_gate(
    gates: Gates, rate: float, control_rate: float, figures: dict[str, Figure], gate: str
) -> list[str]:
    """The error-rate gate (ERROR_RATE or SHADOW_ERRORS): its figures added to
    ``figures``; ``[gate]`` when it fails."""
    side = "shadow" if gate == SHADOW_ERRORS else "candidate"
    increase = rate - control_rate
    figures |= {
        f"{side}_error_rate": rate,
        "control_error_rate": control_rate,
        f"{'shadow_' if side == 'shadow' else ''}error_rate_increase": increase,
    }
    return [gate] if increase > gates.max_error_rate_increase else []


def _ratio(candidate: float | None, control: float | None) -> float | None:
    """candidate / control; None when either is unknown or the control's is 0."""
    if candidate is None or control is None or control <= 0:
        return None
    return candidate / control


def _significantly_worse(comparison: Comparison | Undefined | None) -> bool:
    return isinstance(comparison, Comparison) and comparison.interval.high < 0


def _reward_figures(comparison: Comparison | Undefined | None) -> dict[str, Figure]:
    if not isinstance(comparison, Comparison):
        why = comparison.reason if comparison else "no comparison"
        return {"reward_undefined": why}
    return {
        "reward_test": comparison.test,
        "reward_difference": comparison.difference,
        "reward_low": comparison.interval.low,
        "reward_high": comparison.interval.high,
        "p_value": comparison.p_value,
    }


def _verdict(
    failed: list[str], figures: dict[str, Figure], live: ControlFigures | None
) -> GateVerdict:
    if failed:
        detail = ", ".join(_gate_detail(name, figures) for name in failed)
        return GateVerdict(Outcome.FAILED, f"failed: {detail}", tuple(failed), figures, live)
    return GateVerdict(Outcome.PASSED, "every gate passed", (), figures, live)


_DETAIL = {  # gate -> (the figure that failed it, how to say it)
    ERROR_RATE: ("error_rate_increase", "error rate +{}"),
    SHADOW_ERRORS: ("shadow_error_rate_increase", "shadow error rate +{}"),
    P99_RATIO: ("p99_ratio", "p99 {}x the control's"),
    REWARD: ("reward_difference", "reward {} (significantly worse)"),
    SHADOW_AGREEMENT: ("shadow_agreement", "shadow agreement {}"),
}


def _gate_detail(name: str, figures: Mapping[str, Figure]) -> str:
    key, form = _DETAIL[name]
    value = figures.get(key)
    return form.format(f"{value:.4g}" if isinstance(value, int | float) else "none")
