"""The experiments' cost: requests/s of one stageserve gateway with the inference log at
100% sampling (Parquet files) and feedback flowing, against the same gateway without,
at 32 connections on the 1-row Ridge payload.

Two gateways run side by side with the same settings but the log: ``plain`` (log off)
and ``logged``. Runs alternate between them (ABBA order, as the matrix's rounds), each
after an unmeasured warm-up; both arms use the same wrk script, which records every
answer's X-Feedback-Id, so wrk does the same work in both. During the logged arm's runs
a thread sends one feedback item per answer, in batches of 100 (bench/feedback_sender.py).

Then it checks what it measured: the feedback answers' ``accepted`` counts, the
gateway's inference log counters (rows, drops), and, after a SIGTERM (which flushes the
log), the Parquet files read back with pandas: every recorded answer's id is a
prediction row, and there is a feedback row per accepted item.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from bench import procs, servers
from bench.feedback_sender import FeedbackCounts, FeedbackSender
from bench.goals import GOAL_CONCURRENCY
from bench.metrics_text import counter_values
from bench.payloads import Payload
from bench.registry import RIDGE
from bench.settings import Settings
from bench.stats import LoadResult, server_order, summarize_cpu, summarize_overhead, worker_cpu
from bench.wrk import Wrk

BASELINE, LOADED = "plain", "logged"
TOKEN = "bench-feedback-token"
COUNTERS = {
    "rows": "stageserve_inference_log_rows_total",
    "dropped": "stageserve_inference_log_dropped_total",
    "feedback": "stageserve_feedback_total",
    "refused": "stageserve_feedback_refused_total",
}


def _gateway(
    settings: Settings, registry_uri: str, work: Path, log_dir: Path | None
) -> servers.Server:
    env = {"STAGESERVE_FEEDBACK_TOKEN": TOKEN}
    if log_dir is not None:
        env |= {
            "STAGESERVE_INFERENCE_LOG_DIR": str(log_dir),
            "STAGESERVE_INFERENCE_LOG_SAMPLE": "1",
        }
    return servers.stageserve([RIDGE], registry_uri, settings.workers, settings.poll_interval_s,
                              work, env)  # fmt: skip


def _check_answer(url: str, payload: Payload) -> None:
    """One prediction: a 200 carrying the X-Feedback-Id the feedback will name."""
    response = httpx.post(
        url, content=payload.body, headers={"Content-Type": "application/json"}, timeout=30
    )
    if response.status_code != 200 or not response.headers.get("x-feedback-id"):
        raise servers.ServerError(f"{url}: {response.status_code} without an X-Feedback-Id")


def read_log(folder: Path) -> pd.DataFrame:
    """The inference log as one table (empty when nothing was written)."""
    if not any(folder.rglob("*.parquet")):
        return pd.DataFrame(columns=["kind", "request_id"])
    return pd.read_parquet(folder)


def check_log(table: pd.DataFrame, recorded_ids: set[str], accepted: int) -> dict[str, Any]:
    """What the files hold against what the bench saw answered and accepted."""
    predictions = set(table.loc[table["kind"] == "prediction", "request_id"])
    feedback = table.loc[table["kind"] == "feedback", "request_id"]
    return {
        "prediction_rows": int((table["kind"] == "prediction").sum()),
        "feedback_rows": len(feedback),
        "answers_recorded": len(recorded_ids),
        "answers_missing": len(recorded_ids - predictions),
        "feedback_rows_equal_accepted": len(feedback) == accepted,
        "feedback_without_prediction": int((~feedback.isin(predictions)).sum()),
    }


def _read_ids(paths: list[Path]) -> set[str]:
    return {line for p in paths if p.exists() for line in p.read_text().splitlines() if line}


def run_overhead(
    settings: Settings,
    registry_uri: str,
    payload: Payload,
    wrk: Wrk,
    say: Callable[[str], None],
) -> dict[str, Any]:
    work = settings.work_dir / "overhead"
    shutil.rmtree(work, ignore_errors=True)
    log_dir = work / "inference-log"
    conns, rounds = GOAL_CONCURRENCY, settings.rounds
    runs: dict[str, list[LoadResult]] = {BASELINE: [], LOADED: []}
    cpu: dict[str, list[dict[str, float]]] = {BASELINE: [], LOADED: []}
    order: list[str] = []
    counts = FeedbackCounts()
    logged_ids: list[Path] = []
    with ExitStack() as stack:
        gateways = {
            BASELINE: _gateway(settings, registry_uri, work, None),
            LOADED: _gateway(settings, registry_uri, work, log_dir),
        }
        for gateway in gateways.values():
            gateway.launch()
            stack.callback(gateway.stop)
        pids = {arm: g.wait_workers_ready(settings.workers) for arm, g in gateways.items()}
        urls = {arm: g.base_url + servers.stageserve_path(RIDGE) for arm, g in gateways.items()}
        for url in urls.values():
            _check_answer(url, payload)
        say(f"overhead: gateways ready, workers {pids}")
        for index in range(rounds):
            for arm in server_order([BASELINE, LOADED], index):
                ids_file = work / f"ids-{arm}-{index}.txt"
                sender = None
                if arm == LOADED:
                    logged_ids.append(ids_file)
                    feedback_url = gateways[LOADED].base_url + f"/models/{RIDGE}/feedback"
                    sender = FeedbackSender(feedback_url, ids_file, TOKEN)
                    sender.start()
                if settings.warmup_s > 0:
                    wrk.run(urls[arm], payload.path, conns, settings.warmup_s, ids_file)
                before = procs.cpu_by_pid(pids[arm])
                result = wrk.run(urls[arm], payload.path, conns, settings.duration_s, ids_file)
                cpu[arm].append(worker_cpu(before, procs.cpu_by_pid(pids[arm])))
                runs[arm].append(result)
                order.append(arm)
                sent = ""
                if sender is not None:
                    done = sender.stop()
                    counts.add(done)
                    sent = f"  feedback {done.accepted}/{done.sent} accepted"
                say(
                    f"  overhead c={conns} round {index + 1} {arm:<7} {result.rps:8.1f} req/s  "
                    f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  "
                    f"errors {result.errors_total}{sent}"
                )
        metrics_text = httpx.get(gateways[LOADED].base_url + "/metrics", timeout=30).text
        metrics = {key: counter_values(metrics_text, name) for key, name in COUNTERS.items()}
        started = time.monotonic()
        gateways[LOADED].stop()  # SIGTERM: the log's open files are flushed and closed
        say(f"overhead: logged gateway stopped in {time.monotonic() - started:.1f} s")
    log = check_log(read_log(log_dir), _read_ids(logged_ids), counts.accepted)
    say(f"overhead: log {log}, feedback {asdict(counts)}")
    return {
        "concurrency": conns,
        "rounds": rounds,
        "duration_s": settings.duration_s,
        "warmup_s": settings.warmup_s,
        "workers": settings.workers,
        "payload": payload.name,
        "order": order,
        "runs": {arm: [r.as_dict() for r in results] for arm, results in runs.items()},
        "worker_cpu_s": cpu,
        **summarize_overhead(runs, BASELINE, LOADED),
        "cpu": summarize_cpu(runs, cpu),
        "feedback": asdict(counts),
        "metrics": metrics,
        "log": log,
    }
