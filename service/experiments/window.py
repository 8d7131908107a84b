"""An experiment's window from counter samples: what each (target, version) did between
two readings of the same counters.

Input is plain typed data (``Sample``: metric name, labels, value), so the same code
turns a gateway's own metrics (a reading at the window's end minus one at its start)
and Prometheus's answers (service/experiments/promql.py: already the difference, no
start) into an ``ExperimentWindow`` (service/experiments/results.py). Counter resets (a
restart) are handled as ``RewardSummary.since`` does: a family of a version (its
outcomes, its latency buckets) that counts less at the end than at the start is taken
from the end alone (``counts_since``).

Where Prometheus falls back to ``increase`` (a series reset in the window), it
extrapolates to the window's edges, so its counts need not be whole: counts are
rounded, and a version's reward sums are scaled by the same factor as its count (count
and sums are scraped together), so the mean reward stays exact. Shadow counters carry
no version: a shadow target's counts go to the version serving it at the window's end
(``stageserve_loaded_version``), else its newest in the window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from service.experiments import metric_names as names
from service.experiments.results import ExperimentWindow, VersionWindow
from service.experiments.reward_stats import RewardSummary

Key = TypeVar("Key")
Row = tuple[str, int]  # (target, version)


@dataclass(frozen=True)
class Sample:
    """One series' value: a counter, a histogram bucket or a gauge, with its labels."""

    name: str
    labels: Mapping[str, str]
    value: float


@dataclass
class VersionTotals:
    """One (target, version)'s counters at one reading (cumulative)."""

    outcomes: dict[str, float] = field(default_factory=dict)
    latency: dict[float, float] = field(default_factory=dict)
    rewards: dict[str, float] = field(default_factory=dict)  # reward counter name -> value


@dataclass
class Reading:
    """A model's counters at one time, by (target, version); shadow counts by the
    shadow target; the version each target served (the loaded-version gauge)."""

    versions: dict[Row, VersionTotals] = field(default_factory=dict)
    shadow: dict[str, dict[str, float]] = field(default_factory=dict)
    serving: dict[str, int] = field(default_factory=dict)


def read_samples(samples: Iterable[Sample], model: str) -> Reading:
    """The model's series among ``samples``, summed by (target, version) (several workers'
    or replicas' series, bounds written "1" and "1.0")."""
    reading = Reading()
    for sample in samples:
        labels = sample.labels
        if labels.get(names.MODEL) != model:
            continue
        target = labels.get(names.TARGET, "")
        if not target:  # refused before routing: no target to attribute it to
            continue
        if sample.name == names.SHADOW:
            shadow = labels.get(names.SHADOW_TARGET, "")
            if shadow:
                _add(
                    reading.shadow.setdefault(shadow, {}),
                    labels.get(names.OUTCOME, ""),
                    sample.value,
                )
            continue
        if sample.name == names.LOADED_VERSION:
            if sample.value >= 1:
                reading.serving[target] = max(reading.serving.get(target, 0), int(sample.value))
            continue
        version = _version(labels.get(names.VERSION, ""))
        if version is None:
            continue
        totals = reading.versions.setdefault((target, version), VersionTotals())
        if sample.name == names.REQUESTS:
            _add(totals.outcomes, labels.get(names.OUTCOME, ""), sample.value)
        elif sample.name == names.LATENCY_BUCKETS:
            _add(totals.latency, float(labels.get(names.LE, "nan")), sample.value)
        elif sample.name in names.REWARD_SUMS:
            _add(totals.rewards, sample.name, sample.value)
    return reading


def build_window(
    model: str,
    control: str,
    end: Iterable[Sample],
    start: Iterable[Sample] = (),
    *,
    start_time: float | None = None,
    end_time: float | None = None,
    order: Sequence[str] = (),
) -> ExperimentWindow:
    """What each (target, version) did between the ``start`` and ``end`` readings.

    Without ``start`` the ``end`` samples are the window's own counts (Prometheus's
    ``increase``, or counters since the gateway started). Rows are sorted by the
    target's place in ``order`` (the policy's targets), then by target and version; a
    version with nothing in the window has no row.
    """
    after, before = read_samples(end, model), read_samples(start, model)
    rows: dict[Row, VersionWindow] = {}
    for row, totals in after.versions.items():
        earlier = before.versions.get(row, VersionTotals())
        rows[row] = VersionWindow(
            target=row[0],
            version=row[1],
            outcomes=_whole(counts_since(totals.outcomes, earlier.outcomes)),
            latency=counts_since(totals.latency, earlier.latency),
            rewards=reward_summary(totals.rewards).since(reward_summary(earlier.rewards)),
        )
    for target, outcomes in after.shadow.items():
        version = after.serving.get(target) or max(
            (v for t, v in rows if t == target), default=None
        )
        if version is None:
            continue  # nothing says which version answered as the shadow
        counts = _whole(counts_since(outcomes, before.shadow.get(target, {})))
        present = rows.get((target, version), VersionWindow(target, version))
        rows[(target, version)] = VersionWindow(
            present.target, version, present.outcomes, present.latency, present.rewards, counts
        )
    place = {target: i for i, target in enumerate(order)}
    busy = [row for row, window in rows.items() if not _idle(window)]
    ordered = sorted(busy, key=lambda row: (place.get(row[0], len(place)), row))
    return ExperimentWindow(
        model=model,
        control=control,
        versions=tuple(rows[row] for row in ordered),
        start=start_time,
        end=end_time,
    )


def _idle(window: VersionWindow) -> bool:
    """Nothing in the window: no request, reward or shadow answer (a version that
    served before the window, or a target that served nothing in it). Not a row."""
    return (
        not any(window.outcomes.values())
        and window.rewards.count == 0
        and not any(window.shadow.values())
    )


def reward_summary(sums: Mapping[str, float]) -> RewardSummary:
    """The reward counters of one version as a ``RewardSummary``; a count that is not
    whole (Prometheus's extrapolation) is rounded and the sums scaled alike."""
    raw_count = sums.get(names.REWARD_COUNT, 0.0)
    count = round(raw_count)
    scale = count / raw_count if raw_count > 0 else 1.0
    total = sums.get(names.REWARD_POSITIVE_SUM, 0.0) - sums.get(names.REWARD_NEGATIVE_SUM, 0.0)
    return RewardSummary(
        count=count,
        total=total * scale,
        total_sq=sums.get(names.REWARD_SQUARES_SUM, 0.0) * scale,
        non_binary=round(sums.get(names.REWARD_NONBINARY, 0.0)),
    )


def counts_since(end: Mapping[Key, float], start: Mapping[Key, float]) -> dict[Key, float]:
    """Counters by key (an outcome, a latency bucket's bound) between two readings of one
    family. A key missing from ``start`` counted nothing then; any one counting less at
    ``end`` means a reset (a restart), and then the window is ``end`` itself."""
    if any(count < start.get(key, 0.0) for key, count in end.items()):
        return dict(end)
    return {key: count - start.get(key, 0.0) for key, count in end.items()}


def _whole(counts: Mapping[str, float]) -> dict[str, int]:
    return {key: round(count) for key, count in counts.items() if round(count) > 0}


def _add(into: dict[Key, float], key: Key, value: float) -> None:
    if not math.isnan(value):
        into[key] = into.get(key, 0.0) + value


def _version(text: str) -> int | None:
    return int(text) if text.isdecimal() else None
