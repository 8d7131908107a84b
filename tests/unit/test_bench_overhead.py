"""The inference log overhead benchmark's pure parts: following wrk's id file, the
feedback items and counts, the /metrics counters, the medians and ratio, the checks of
the Parquet table, the goals (f), its flags and its section of docs/benchmarks.md."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bench.feedback_sender import FeedbackCounts, IdTail, feedback_items
from bench.goals import overhead_goals
from bench.metrics_text import counter_values
from bench.overhead import check_log
from bench.report import render
from bench.settings import settings_from_args
from bench.stats import LoadResult, summarize_overhead


def run(requests: int, p50: float = 10.0, p99: float = 20.0) -> LoadResult:
    return LoadResult(requests, 10.0, p50, p99, 30.0, {"status": 0})


def test_the_tail_returns_only_complete_lines_once(tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    tail = IdTail(ids)
    assert tail.read() == []  # wrk has not written yet
    ids.write_bytes(b"a1\nb2\nc")  # wrk's buffer cut the third id
    assert tail.read() == ["a1", "b2"]
    assert tail.read() == []
    with ids.open("ab") as file:
        file.write(b"3\nd4\n")
    assert tail.read() == ["c3", "d4"]


def test_feedback_items_carry_each_id_a_binary_reward_and_a_truth() -> None:
    items = feedback_items(["x", "y", "z"], first_index=7)
    assert [i["request_id"] for i in items] == ["x", "y", "z"]
    assert [i["reward"] for i in items] == [1, 0, 1]
    assert [i["truth"] for i in items] == [7.0, 8.0, 9.0]


def test_feedback_counts_sum_batch_answers_and_runs() -> None:
    counts = FeedbackCounts(sent=200, posts=2)
    counts.add_answer({"accepted": 99, "duplicates": 1, "refused": 0, "errors": []})
    counts.add_answer({"accepted": 98, "duplicates": 0, "refused": 2})
    total = FeedbackCounts(sent=5, posts=1, accepted=5, failed_posts=1)
    total.add(counts)
    assert total == FeedbackCounts(
        sent=205, posts=3, accepted=202, duplicates=1, refused=2, failed_posts=1
    )


METRICS = """\
# HELP stageserve_inference_log_dropped_total Rows dropped.
# TYPE stageserve_inference_log_dropped_total counter
stageserve_inference_log_dropped_total{destination="file",reason="queue_full"} 3.0
stageserve_inference_log_dropped_total{destination="sink",reason="sink_error"} 0.0
# HELP stageserve_inference_log_files_total Files completed.
# TYPE stageserve_inference_log_files_total counter
stageserve_inference_log_files_total 4.0
# HELP stageserve_inference_log_rows_total Rows written.
# TYPE stageserve_inference_log_rows_total counter
stageserve_inference_log_rows_total{kind="prediction"} 120.0
stageserve_inference_log_rows_total{kind="feedback"} 100.0
"""


def test_counter_values_by_label_values() -> None:
    assert counter_values(METRICS, "stageserve_inference_log_dropped_total") == {
        "file/queue_full": 3.0,
        "sink/sink_error": 0.0,
    }
    assert counter_values(METRICS, "stageserve_inference_log_rows_total") == {
        "prediction": 120.0,
        "feedback": 100.0,
    }
    assert counter_values(METRICS, "stageserve_inference_log_files_total") == {"": 4.0}
    assert counter_values(METRICS, "stageserve_feedback_total") == {}


def test_the_ratio_is_of_the_medians() -> None:
    runs = {
        "plain": [run(1000, 10, 20), run(1200, 12, 30), run(1100, 11, 25)],
        "logged": [run(990, 11, 22), run(500, 30, 90), run(1045, 12, 26)],
    }
    summary = summarize_overhead(runs, "plain", "logged")
    assert summary["median"]["plain"]["rps"] == 110.0
    assert summary["median"]["logged"]["rps"] == 99.0  # the slow run does not count
    assert summary["ratio_rps"] == pytest.approx(0.9)
    assert summary["ratio_p50"] == pytest.approx(12 / 11)
    assert summary["ratio_p99"] == pytest.approx(26 / 25)


def test_an_arm_without_runs_gives_no_ratio() -> None:
    summary = summarize_overhead({"plain": [run(100)], "logged": []}, "plain", "logged")
    assert math.isnan(summary["ratio_rps"])


def test_check_log_compares_the_files_with_what_was_answered_and_accepted() -> None:
    table = pd.DataFrame(
        {
            "kind": ["prediction"] * 4 + ["feedback"] * 3,
            "request_id": ["a", "b", "c", "extra", "a", "b", "ghost"],
        }
    )
    checked = check_log(table, {"a", "b", "c", "lost"}, accepted=3)
    assert checked == {
        "prediction_rows": 4,
        "feedback_rows": 3,
        "answers_recorded": 4,
        "answers_missing": 1,  # "lost"
        "feedback_rows_equal_accepted": True,
        "feedback_without_prediction": 1,  # "ghost"
    }
    assert not check_log(table, {"a"}, accepted=2)["feedback_rows_equal_accepted"]


def overhead_result(logged_rps: float = 950.0, dropped: float = 0.0) -> dict[str, Any]:
    plain, logged = run(10_000), run(round(logged_rps * 10))
    runs = {"plain": [plain, plain], "logged": [logged, logged]}
    return {
        "command": "python -m bench --overhead-only",
        "started_at": "2026-11-30 03:00 UTC",
        "load_average": [[1.0, 1.0, 1.0], [2.0, 1.5, 1.0]],
        "machine": {"cores": 2},
        "concurrency": 32,
        "rounds": 2,
        "duration_s": 15.0,
        "warmup_s": 1.0,
        "workers": 2,
        "payload": "1-row",
        "order": ["plain", "logged", "logged", "plain"],
        "runs": {arm: [r.as_dict() for r in rs] for arm, rs in runs.items()},
        "worker_cpu_s": {
            "plain": [{"1": 10.0, "2": 10.0}] * 2,
            "logged": [{"1": 12.0, "2": 12.0}] * 2,
        },
        **summarize_overhead(runs, "plain", "logged"),
        "cpu": {"plain": {"ms_per_request": 2.0}, "logged": {"ms_per_request": 2.5}},
        "feedback": FeedbackCounts(sent=300, posts=3, accepted=300).__dict__,
        "metrics": {
            "rows": {"prediction": 310.0, "feedback": 300.0},
            "dropped": {"file/queue_full": dropped},
            "feedback": {"m/accepted/Production/1": 300.0},
            "refused": {},
        },
        "log": {
            "prediction_rows": 320,
            "feedback_rows": 300,
            "answers_recorded": 300,
            "answers_missing": 0,
            "feedback_rows_equal_accepted": True,
            "feedback_without_prediction": 0,
        },
    }


def test_overhead_goals_pass_at_0_9_and_need_everything_checked() -> None:
    ratio, checked = overhead_goals(overhead_result(logged_rps=950.0))
    assert (ratio.id, ratio.passed, checked.passed) == ("f", True, True)
    assert ratio.measured.startswith("0.95 (950.0 / 1000.0 req/s")
    assert overhead_goals(overhead_result(logged_rps=899.0))[0].passed is False
    assert overhead_goals(overhead_result(dropped=1.0))[1].passed is False
    assert [g.passed for g in overhead_goals(None)] == [None, None]


MACHINE = {"cpu": "x", "cores": 2, "memory_gib": 4, "kernel": "k", "python": "3"}


def rendered(overhead: dict[str, Any]) -> str:
    """docs/benchmarks.md for results holding only the overhead section."""
    settings = settings_from_args([], environ={}).as_dict()
    machine = {**MACHINE, "packages": {}, "load_generator": "wrk"}
    return render({"settings": settings, "machine": machine, "overhead": overhead})


def test_the_report_shows_each_run_in_order_the_ratio_and_the_checks() -> None:
    text = rendered(overhead_result())
    section = text.split("### Inference log and feedback overhead")[1].split("## Goals")[0]
    assert "| 1 | log off, no feedback | 1,000.0 |" in section
    assert "| 2 | log 100% + feedback | 950.0 |" in section
    assert "| 4 | log off, no feedback |" in section
    assert "| 0 | 2.53 |" in section  # the logged runs' worker CPU: 24 s / 9,500 requests
    assert "| **0.950** | 1.000 | 1.000 |  | 1.250 |" in section  # CPU ms/req 2.5 / 2.0
    assert "300 / 300 / 0 / 0" in section
    assert "| f | inference log at 100% + feedback" in text
    assert "busy, shared machine" not in section  # load average 2 on 2 cores


def test_the_report_warns_when_the_machine_was_busier_than_its_cores() -> None:
    overhead = overhead_result()
    overhead["load_average"] = [[4.5, 2.0, 1.0], [1.5, 1.0, 1.0]]
    assert "load average 4.5 on 2 cores before the run" in rendered(overhead)


def test_the_bench_s_own_load_after_the_run_is_no_warning() -> None:
    overhead = overhead_result()
    overhead["load_average"] = [[0.9, 1.0, 1.0], [3.4, 2.0, 1.0]]
    assert "busy, shared machine" not in rendered(overhead)


def test_overhead_only_runs_nothing_else_and_no_overhead_skips_it() -> None:
    only = settings_from_args(["--overhead-only"], environ={})
    assert (only.run_matrix, only.run_swaps, only.run_overhead) == (False, False, True)
    assert only.overhead_only
    skip = settings_from_args(["--no-overhead"], environ={})
    assert (skip.run_matrix, skip.run_swaps, skip.run_overhead) == (True, True, False)
