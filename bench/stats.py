"""Pure arithmetic on load-test results: one run's summary, medians over rounds, ratios.

Kept free of I/O so the report and the goals can be computed again from results.json.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

ERROR_KINDS = ("connect", "read", "write", "timeout", "status")


@dataclass(frozen=True)
class LoadResult:
    """What one closed-loop run measured; the same fields from wrk and from bench/loadgen.py."""

    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def errors_total(self) -> int:
        return sum(self.errors.values())

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rps"] = round(self.rps, 2)
        out["errors_total"] = self.errors_total
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadResult:
        return cls(
            requests=int(data["requests"]),
            duration_s=float(data["duration_s"]),
            p50_ms=float(data["p50_ms"]),
            p99_ms=float(data["p99_ms"]),
            max_ms=float(data["max_ms"]),
            errors={k: int(v) for k, v in data.get("errors", {}).items()},
        )


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Iterable[float]) -> float:
    items = [v for v in values if not math.isnan(v)]
    return statistics.median(items) if items else math.nan


def number(value: Any) -> float:
    """A number from results.json, where a missing one is null: NaN then."""
    return math.nan if value is None else float(value)


def ratio(numerator: float, denominator: float) -> float:
    """numerator/denominator, NaN when either is missing or the denominator is 0."""
    if math.isnan(numerator) or math.isnan(denominator) or denominator == 0:
        return math.nan
    return numerator / denominator


def summarize(runs: Sequence[LoadResult]) -> dict[str, float]:
    """Medians over rounds of requests/s and latencies; errors summed over rounds (one
    failed request in any round is worth seeing)."""
    return {
        "rps": median(r.rps for r in runs),
        "p50_ms": median(r.p50_ms for r in runs),
        "p99_ms": median(r.p99_ms for r in runs),
        "errors": float(sum(r.errors_total for r in runs)),
        "rounds": float(len(runs)),
    }


def summarize_cell(runs: Mapping[str, Sequence[LoadResult]]) -> dict[str, Any]:
    """Per server the medians, plus stageserve/peer ratios of requests/s and of p50."""
    medians = {server: summarize(results) for server, results in runs.items()}
    peer = medians.get("peer", {})
    ours = medians.get("stageserve", {})
    echo = medians.get("echo", {})
    return {
        "median": medians,
        "ratio_rps": ratio(ours.get("rps", math.nan), peer.get("rps", math.nan)),
        "ratio_p50": ratio(ours.get("p50_ms", math.nan), peer.get("p50_ms", math.nan)),
        "ratio_p99": ratio(ours.get("p99_ms", math.nan), peer.get("p99_ms", math.nan)),
        "fraction_of_echo": ratio(ours.get("rps", math.nan), echo.get("rps", math.nan)),
    }


def server_order(servers: Sequence[str], round_index: int) -> list[str]:
    """Alternate who goes first: as given in even rounds, reversed in odd ones, so a
    machine that warms up or slows down over a cell does not favour one server."""
    return list(servers) if round_index % 2 == 0 else list(reversed(servers))


def spread(values: Sequence[float]) -> dict[str, float]:
    """p50, p95 and max of a sample (the swap delays)."""
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values, default=math.nan),
        "count": float(len(values)),
    }


def summarize_swaps(per_swap: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Delays of the swaps that completed, and the load times the gateway reported."""
    done = [s for s in per_swap if s.get("all_workers_s") is not None]
    loads = [s["load_duration_s"] for s in done if s.get("load_duration_s") is not None]
    return {
        "first_answer_s": spread([s["first_answer_s"] for s in done]),
        "all_workers_s": spread([s["all_workers_s"] for s in done]),
        "load_duration_s": {"median": median(loads), "max": max(loads, default=math.nan)},
        "completed": len(done),
        "timed_out": len(per_swap) - len(done),
    }


def memory_ratio(first_kib: dict[str, int], last_kib: dict[str, int]) -> float:
    """Total worker RSS after the last swap over the total after the first."""
    return ratio(float(sum(last_kib.values())), float(sum(first_kib.values())))


def worker_cpu(before: dict[int, float], after: dict[int, float]) -> dict[str, float]:
    """CPU seconds each worker used during one run (pids as strings, as JSON keys are)."""
    return {str(pid): round(after.get(pid, 0.0) - used, 3) for pid, used in before.items()}


def summarize_cpu(
    runs: Mapping[str, Sequence[LoadResult]], cpu: Mapping[str, Sequence[dict[str, float]]]
) -> dict[str, dict[str, float]]:
    """Per server, medians over rounds of the workers' CPU milliseconds per request (what
    a request costs, whatever the machine's other load) and of the busiest worker's share
    of that CPU (1/workers when the load is spread evenly, 1.0 when one worker does all)."""
    out: dict[str, dict[str, float]] = {}
    for server, results in runs.items():
        per_request, busiest = [], []
        for result, used in zip(results, cpu.get(server, []), strict=False):
            total = sum(used.values())
            if not used or total <= 0:
                continue
            if result.requests:
                per_request.append(total * 1000 / result.requests)
            busiest.append(max(used.values()) / total)
        out[server] = {"ms_per_request": median(per_request), "busiest_share": median(busiest)}
    return out


def summarize_overhead(
    runs: Mapping[str, Sequence[LoadResult]], baseline: str, loaded: str
) -> dict[str, Any]:
    """The overhead benchmark's medians per arm and the loaded arm's share of the
    baseline's requests/s (ratio of medians: one noisy run moves neither much)."""
    medians = {arm: summarize(results) for arm, results in runs.items()}
    return {
        "median": medians,
        "ratio_rps": ratio(medians[loaded]["rps"], medians[baseline]["rps"]),
        "ratio_p50": ratio(medians[loaded]["p50_ms"], medians[baseline]["p50_ms"]),
        "ratio_p99": ratio(medians[loaded]["p99_ms"], medians[baseline]["p99_ms"]),
    }
