"""The issue's goals, evaluated from the numbers alone (pure: results dict in, rows out).

(a) 1-row Ridge at 32 connections: stageserve >= 4x the peer's requests/s, a lower p99,
    zero errors; (b) 32-row payloads and the forest, at 32 connections: >= 2x;
(c) one connection: stageserve's p50 <= the peer's; (d) stageserve's 1-row Ridge
    >= 0.7 of the echo ceiling at 32 connections; (e) swap p95 < 2 poll intervals + load
    time, memory after the last swap within 10% of after the first, no failed request;
(f) with the inference log at 100% and feedback flowing, >= 0.9 of the requests/s of the
    same gateway without, at 32 connections; and what was measured happened: every
    feedback item accepted, every recorded answer and accepted item in the Parquet files,
    no row dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.stats import number as _num

RIDGE = "bench-ridge"
FOREST = "bench-forest"
GOAL_CONCURRENCY = 32


@dataclass(frozen=True)
class Goal:
    id: str
    text: str
    measured: str
    passed: bool | None  # None: not measured in this run

    @property
    def verdict(self) -> str:
        return {True: "pass", False: "FAIL", None: "n/a"}[self.passed]


def _cell(cells: list[dict[str, Any]], model: str, payload: str, conc: int) -> dict | None:
    for cell in cells:
        if (cell["model"], cell["payload"], cell["concurrency"]) == (model, payload, conc):
            return cell
    return None


def _fmt(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _missing(goal_id: str, text: str) -> Goal:
    return Goal(goal_id, text, "not measured", None)


def _speedup(cells: list[dict], goal_id: str, model: str, payload: str, factor: float) -> Goal:
    text = (
        f"{model} {payload}, {GOAL_CONCURRENCY} connections: stageserve >= {factor:g}x peer req/s"
    )
    cell = _cell(cells, model, payload, GOAL_CONCURRENCY)
    if cell is None:
        return _missing(goal_id, text)
    r = _num(cell["ratio_rps"])
    return Goal(goal_id, text, f"{_fmt(r)}x", None if math.isnan(r) else r >= factor)


def throughput_goals(cells: list[dict[str, Any]]) -> list[Goal]:
    goals = [_speedup(cells, "a", RIDGE, "1-row", 4.0)]
    cell = _cell(cells, RIDGE, "1-row", GOAL_CONCURRENCY)
    text = f"{RIDGE} 1-row, {GOAL_CONCURRENCY} connections: stageserve p99 < peer p99, 0 errors"
    if cell is None:
        goals.append(_missing("a", text))
    else:
        ours, peer = cell["median"]["stageserve"], cell["median"]["peer"]
        errors = int(ours["errors"])
        p99_ok = _num(ours["p99_ms"]) < _num(peer["p99_ms"])
        goals.append(
            Goal(
                "a",
                text,
                f"p99 {_fmt(_num(ours['p99_ms']))} vs {_fmt(_num(peer['p99_ms']))} ms, "
                f"{errors} errors",
                p99_ok and errors == 0,
            )
        )
    goals += [
        _speedup(cells, "b", RIDGE, "32-row", 2.0),
        _speedup(cells, "b", FOREST, "1-row", 2.0),
        _speedup(cells, "b", FOREST, "32-row", 2.0),
    ]
    for model in (RIDGE, FOREST):
        for payload in ("1-row", "32-row"):
            text = f"{model} {payload}, 1 connection: stageserve p50 <= peer p50"
            cell = _cell(cells, model, payload, 1)
            if cell is None:
                goals.append(_missing("c", text))
                continue
            ours = _num(cell["median"]["stageserve"]["p50_ms"])
            peer = _num(cell["median"]["peer"]["p50_ms"])
            goals.append(Goal("c", text, f"{_fmt(ours)} vs {_fmt(peer)} ms", bool(ours <= peer)))
    text = f"{RIDGE} 1-row, {GOAL_CONCURRENCY} connections: stageserve >= 0.7 of echo req/s"
    cell = _cell(cells, RIDGE, "1-row", GOAL_CONCURRENCY)
    fraction = _num(cell.get("fraction_of_echo")) if cell else math.nan
    if math.isnan(fraction):
        goals.append(_missing("d", text))
    else:
        goals.append(Goal("d", text, _fmt(fraction), fraction >= 0.7))
    return goals


def swap_goals(swaps: dict[str, Any] | None) -> list[Goal]:
    text_delay = "swap delay p95 (first new answer) < 2 poll intervals + median load time"
    text_memory = "worker RSS after the last swap within 10% of after the first"
    text_errors = "no failed request during the swaps"
    if not swaps:
        return [_missing("e", text_delay), _missing("e", text_memory), _missing("e", text_errors)]
    poll = _num(swaps["poll_interval_s"])
    load = _num(swaps["load_duration_s"]["median"])
    p95 = _num(swaps["first_answer_s"]["p95"])
    limit = 2 * poll + (0.0 if math.isnan(load) else load)
    delay = Goal(
        "e",
        text_delay,
        f"{_fmt(p95, 3)} s < {_fmt(limit, 3)} s (2 x {poll:g} + {_fmt(load, 3)})",
        None if math.isnan(p95) else p95 < limit and swaps["timed_out"] == 0,
    )
    memory = swaps.get("memory", {})
    mem_ratio = _num(memory.get("ratio"))
    mem = Goal(
        "e",
        text_memory,
        f"{_fmt(mem_ratio, 3)} after {memory.get('swaps_at_last')} swaps",
        None if math.isnan(mem_ratio) else mem_ratio <= 1.10,
    )
    errors = int(swaps["errors"])
    err = Goal("e", text_errors, f"{errors} of {swaps['requests']}", errors == 0)
    return [delay, mem, err]


OVERHEAD_FLOOR = 0.9


def overhead_goals(overhead: dict[str, Any] | None) -> list[Goal]:
    text_ratio = (
        f"inference log at 100% + feedback, {GOAL_CONCURRENCY} connections: "
        f">= {OVERHEAD_FLOOR:g} of the req/s without"
    )
    text_checked = "every feedback item accepted and logged, every answer logged, no drop"
    if not overhead:
        return [_missing("f", text_ratio), _missing("f", text_checked)]
    r = _num(overhead["ratio_rps"])
    medians = overhead["median"]
    ratio = Goal(
        "f",
        text_ratio,
        f"{_fmt(r)} ({_fmt(_num(medians['logged']['rps']), 1)} / "
        f"{_fmt(_num(medians['plain']['rps']), 1)} req/s, medians)",
        None if math.isnan(r) else r >= OVERHEAD_FLOOR,
    )
    feedback, log = overhead["feedback"], overhead["log"]
    drops = int(sum(overhead["metrics"]["dropped"].values()))
    checked = (
        feedback["accepted"] == feedback["sent"] > 0
        and log["answers_missing"] == 0
        and log["feedback_rows_equal_accepted"]
        and drops == 0
    )
    measured = (
        f"{feedback['accepted']} of {feedback['sent']} accepted, {log['feedback_rows']} "
        f"feedback rows; {log['answers_recorded'] - log['answers_missing']} of "
        f"{log['answers_recorded']} answers logged; {drops} dropped"
    )
    return [ratio, Goal("f", text_checked, measured, checked)]


def evaluate(results: dict[str, Any]) -> list[Goal]:
    return (
        throughput_goals(results.get("cells") or [])
        + swap_goals(results.get("swaps"))
        + overhead_goals(results.get("overhead"))
    )
