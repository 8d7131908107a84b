"""Experiment results for the rollout tests, made by the real experiments code
(``experiment_result`` of an ``ExperimentWindow``), not by hand."""

from __future__ import annotations

import math
from collections.abc import Mapping

from service.experiments.results import (
    ExperimentResult,
    ExperimentWindow,
    VersionWindow,
    experiment_result,
)
from service.experiments.reward_stats import RewardSummary

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf)
CONTROL, CANDIDATE = "Production", "Staging"
CONTROL_VERSION, CANDIDATE_VERSION = 3, 7


def latency(requests: int, seconds: float) -> dict[float, float]:
    """Cumulative buckets of ``requests`` that each took about ``seconds``."""
    return {bound: float(requests) if bound >= seconds else 0.0 for bound in BOUNDS}


def outcomes(requests: int, errors: int) -> dict[str, int]:
    counts = {"success": requests - errors, "model_error": errors}
    return {k: v for k, v in counts.items() if v}


def binary(k: int, n: int) -> RewardSummary:
    return RewardSummary.from_values([1.0] * k + [0.0] * (n - k))


def step_result(
    *,
    control_requests: int = 1000,
    control_errors: int = 0,
    control_seconds: float = 0.08,
    control_rewards: RewardSummary | None = None,
    candidate_requests: int = 1000,
    candidate_errors: int = 0,
    candidate_seconds: float = 0.08,
    candidate_rewards: RewardSummary | None = None,
    candidate_version: int = CANDIDATE_VERSION,
    shadow: Mapping[str, int] | None = None,
    older_candidate: bool = False,
) -> ExperimentResult:
    """A control (Production v3) and a candidate (Staging v7) over one window; the
    candidate's row appears whenever it served or mirrored anything."""
    rows = [
        VersionWindow(
            CONTROL,
            CONTROL_VERSION,
            outcomes=outcomes(control_requests, control_errors),
            latency=latency(control_requests, control_seconds) if control_requests else {},
            rewards=control_rewards or RewardSummary(),
        )
    ]
    if older_candidate:  # the candidate target's previous version, still in the window
        rows.append(VersionWindow(CANDIDATE, candidate_version - 1, outcomes=outcomes(500, 400)))
    if candidate_requests or shadow:
        rows.append(
            VersionWindow(
                CANDIDATE,
                candidate_version,
                outcomes=outcomes(candidate_requests, candidate_errors),
                latency=latency(candidate_requests, candidate_seconds)
                if candidate_requests
                else {},
                rewards=candidate_rewards or RewardSummary(),
                shadow=dict(shadow or {}),
            )
        )
    window = ExperimentWindow("churn", CONTROL, rows, start=1000.0, end=1600.0)
    return experiment_result(window)
