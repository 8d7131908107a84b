"""The throughput matrix: for every (model, payload, concurrency) cell, the peer and
stageserve (and, for the 1-row Ridge cells, the echo ceiling) in alternating order over
several rounds, each run preceded by an unmeasured warm-up."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from bench import procs
from bench.payloads import Payload
from bench.stats import LoadResult, server_order, summarize_cell, summarize_cpu, worker_cpu


class LoadGenerator(Protocol):
    name: str
    version: str

    def run(self, url: str, body_path: Path, connections: int, duration_s: float) -> LoadResult: ...


@dataclass(frozen=True)
class Cell:
    model: str
    payload: Payload
    concurrency: int
    urls: dict[str, str]  # server name ("peer", "stageserve", "echo") → invocations URL
    workers: dict[str, list[int]]  # server name → its worker pids, for CPU accounting

    def key(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "payload": self.payload.name,
            "rows": self.payload.rows,
            "concurrency": self.concurrency,
        }


class VerificationError(RuntimeError):
    """A server gave a wrong answer before the measurement: measuring it would be moot."""


def _predictions(url: str, payload: Payload) -> tuple[list[float], dict[str, str]]:
    response = httpx.post(
        url, content=payload.body, headers={"Content-Type": "application/json"}, timeout=30
    )
    if response.status_code != 200:
        raise VerificationError(f"{url} answered {response.status_code}: {response.text[:500]}")
    predictions = response.json().get("predictions")
    if not isinstance(predictions, list) or len(predictions) != payload.rows:
        raise VerificationError(f"{url}: expected {payload.rows} predictions: {response.text}")
    return predictions, dict(response.headers)


def verify(cell: Cell) -> dict[str, Any]:
    """One request to each server before measuring: a 200 with one prediction per row, and
    stageserve's predictions equal to the peer's (a fast wrong answer is no result)."""
    answers = {name: _predictions(url, cell.payload) for name, url in cell.urls.items()}
    peer, ours = answers["peer"][0], answers["stageserve"][0]
    same = all(
        math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) for a, b in zip(peer, ours, strict=True)
    )
    return {
        "model": cell.model,
        "payload": cell.payload.name,
        "status": "ok",
        "predictions_equal": same,
        "stageserve_version": answers["stageserve"][1].get("x-model-version"),
        "first_prediction": {name: preds[0] for name, (preds, _) in answers.items()},
    }


def run_cell(
    load: LoadGenerator,
    cell: Cell,
    rounds: int,
    duration_s: float,
    warmup_s: float,
    say: Callable[[str], None],
) -> dict[str, Any]:
    runs: dict[str, list[LoadResult]] = {name: [] for name in cell.urls}
    cpu: dict[str, list[dict[str, float]]] = {name: [] for name in cell.urls}
    for index in range(rounds):
        for name in server_order(list(cell.urls), index):
            url = cell.urls[name]
            if warmup_s > 0:
                load.run(url, cell.payload.path, cell.concurrency, warmup_s)
            before = procs.cpu_by_pid(cell.workers.get(name, []))
            result = load.run(url, cell.payload.path, cell.concurrency, duration_s)
            runs[name].append(result)
            cpu[name].append(worker_cpu(before, procs.cpu_by_pid(cell.workers.get(name, []))))
            say(
                f"  {cell.model} {cell.payload.name} c={cell.concurrency} round {index + 1} "
                f"{name:<10} {result.rps:8.1f} req/s  p50 {result.p50_ms:7.2f} ms  "
                f"p99 {result.p99_ms:7.2f} ms  errors {result.errors_total}"
            )
    return {
        **cell.key(),
        "runs": {name: [r.as_dict() for r in results] for name, results in runs.items()},
        "worker_cpu_s": cpu,
        **summarize_cell(runs),
        "cpu": summarize_cpu(runs, cpu),
    }
