"""An experiment's results: per target and version, over a window, what it served and
how well, and how each one compares with the control (the policy's first target).

The input is plain numbers (``ExperimentWindow`` of ``VersionWindow``): one gateway's
metrics or Prometheus's HTTP API fill it, nothing here knows either. ``to_json`` gives
the answer of ``GET /admin/models/{name}/experiment`` with these stable keys (a value
that cannot be computed is null, never a missing key)::

    model, confidence, window: {start, end} (epoch seconds or null),
    control: {target, version}  (version: the control target's highest in the window)
    targets: [ one per (target, version), in the input's order:
      target, version, control (bool),
      requests, errors, error_rate      (errors: every outcome but "success")
      outcomes: {outcome: count}
      latency_seconds: {p50, p99}       (Prometheus's histogram_quantile)
      feedback                          (rewards received)
      reward: {mean, low, high, method, undefined}
              method: "wilson" (0/1 rewards) or "student_t"; undefined: why not, or null
      vs_control: null for the control, else
              {test, difference, low, high, statistic, df, p_value, undefined}
              test: "welch" or "two_proportions"; difference = this - control
      shadow: {agree, disagree, error, dropped, agreement}
              agreement = agree / (agree + disagree), as the shadow target
    ]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from service.experiments.comparisons import Comparison, compare
from service.experiments.intervals import DEFAULT_CONFIDENCE, Interval, Undefined, mean_interval
from service.experiments.latency_quantiles import histogram_quantile
from service.experiments.reward_stats import RewardSummary
from service.traffic.shadow import AGREE, DISAGREE, DROPPED, ERROR

SUCCESS = "success"
SHADOW_OUTCOMES = (AGREE, DISAGREE, ERROR, DROPPED)


@dataclass(frozen=True)
class VersionWindow:
    """What one version serving one target did over the window (counts since its start).

    ``outcomes``: prediction requests by outcome; ``latency``: cumulative buckets, upper
    bound -> count (+Inf included); ``shadow``: mirrored requests it answered as the
    shadow, by outcome (agree, disagree, error, dropped).
    """

    target: str
    version: int
    outcomes: Mapping[str, int] = field(default_factory=dict)
    latency: Mapping[float, float] = field(default_factory=dict)
    rewards: RewardSummary = field(default_factory=RewardSummary)
    shadow: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ExperimentWindow:
    """One model's versions over a window; ``control`` is the policy's first target."""

    model: str
    control: str
    versions: Sequence[VersionWindow]
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class TargetResult:
    """One version's figures; ``vs_control`` is None for the control itself."""

    target: str
    version: int
    is_control: bool
    outcomes: Mapping[str, int]
    latency_p50: float | None
    latency_p99: float | None
    rewards: RewardSummary
    reward_interval: Interval | Undefined
    vs_control: Comparison | Undefined | None
    shadow: Mapping[str, int]

    @property
    def requests(self) -> int:
        return sum(self.outcomes.values())

    @property
    def errors(self) -> int:
        return self.requests - self.outcomes.get(SUCCESS, 0)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def shadow_agreement(self) -> float | None:
        compared = self.shadow.get(AGREE, 0) + self.shadow.get(DISAGREE, 0)
        return self.shadow.get(AGREE, 0) / compared if compared else None

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "version": self.version,
            "control": self.is_control,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "outcomes": dict(sorted(self.outcomes.items())),
            "latency_seconds": {"p50": self.latency_p50, "p99": self.latency_p99},
            "feedback": self.rewards.count,
            "reward": {"mean": self.rewards.mean(), **_interval_json(self.reward_interval)},
            "vs_control": None if self.vs_control is None else _comparison_json(self.vs_control),
            "shadow": {
                **{outcome: self.shadow.get(outcome, 0) for outcome in SHADOW_OUTCOMES},
                "agreement": self.shadow_agreement,
            },
        }


@dataclass(frozen=True)
class ExperimentResult:
    """Every version's figures, the control's (target, version) and the window."""

    model: str
    control: str
    control_version: int | None
    confidence: float
    targets: tuple[TargetResult, ...]
    start: float | None = None
    end: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON answer, with the keys the module docstring lists."""
        return {
            "model": self.model,
            "confidence": self.confidence,
            "window": {"start": self.start, "end": self.end},
            "control": {"target": self.control, "version": self.control_version},
            "targets": [target.to_json() for target in self.targets],
        }


def _interval_json(interval: Interval | Undefined) -> dict[str, Any]:
    if isinstance(interval, Undefined):
        return {"low": None, "high": None, "method": None, "undefined": interval.reason}
    return {
        "low": interval.low,
        "high": interval.high,
        "method": interval.method,
        "undefined": None,
    }


def _comparison_json(comparison: Comparison | Undefined) -> dict[str, Any]:
    if isinstance(comparison, Undefined):
        keys = ("test", "difference", "low", "high", "statistic", "df", "p_value")
        return {**dict.fromkeys(keys), "undefined": comparison.reason}
    return {
        "test": comparison.test,
        "difference": comparison.difference,
        "low": comparison.interval.low,
        "high": comparison.interval.high,
        "statistic": comparison.statistic,
        "df": comparison.df,
        "p_value": comparison.p_value,
        "undefined": None,
    }


def _control_row(window: ExperimentWindow) -> VersionWindow | None:
    """The control target's newest version in the window (the one serving it now)."""
    rows = [row for row in window.versions if row.target == window.control]
    return max(rows, key=lambda row: row.version) if rows else None


def experiment_result(
    window: ExperimentWindow, confidence: float = DEFAULT_CONFIDENCE
) -> ExperimentResult:
    """Every version's figures, each one that is not the control compared with it."""
    control = _control_row(window)
    missing = Undefined(f"no version of the control {window.control} in the window")
    targets = []
    for row in window.versions:
        is_control = row is control
        if is_control:
            vs_control: Comparison | Undefined | None = None
        elif control is None:
            vs_control = missing
        else:
            vs_control = compare(control.rewards, row.rewards, confidence)
        targets.append(
            TargetResult(
                target=row.target,
                version=row.version,
                is_control=is_control,
                outcomes=dict(row.outcomes),
                latency_p50=histogram_quantile(0.5, row.latency),
                latency_p99=histogram_quantile(0.99, row.latency),
                rewards=row.rewards,
                reward_interval=mean_interval(row.rewards, confidence),
                vs_control=vs_control,
                shadow=dict(row.shadow),
            )
        )
    return ExperimentResult(
        model=window.model,
        control=window.control,
        control_version=control.version if control else None,
        confidence=confidence,
        targets=tuple(targets),
        start=window.start,
        end=window.end,
    )
