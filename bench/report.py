"""docs/benchmarks.md from results.json: pure rendering, plus the one function that
reads the old file to keep its hand-written Notes section."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.goals import evaluate
from bench.stats import number, ratio

NOTES_START = "<!-- notes -->"
NOTES_END = "<!-- /notes -->"
DEFAULT_NOTES = (
    "_Hand-written analysis goes here: this section (between the notes markers) is kept "
    "when the file is regenerated._"
)
SERVER_LABEL = {"peer": "mlflow models serve", "stageserve": "stageserve", "echo": "echo"}


def extract_notes(text: str) -> str | None:
    """The text between the notes markers of an existing file, None when absent."""
    start = text.find(NOTES_START)
    end = text.find(NOTES_END, start + len(NOTES_START)) if start >= 0 else -1
    if start < 0 or end < 0:
        return None
    return text[start + len(NOTES_START) : end].strip("\n")


def _n(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _x(value: Any) -> str:
    text = _n(value, 2)
    return text if text == "-" else f"{text}x"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _how_to_run(settings: dict[str, Any]) -> list[str]:
    return [
        "## How to run",
        "",
        "```bash",
        "make bench                                  # full run (about 15 minutes)",
        "make bench BENCH_ARGS=--quick               # development: 1 round, 2 s, "
        "concurrency 1 and 32, 10 swaps",
        "make bench BENCH_ARGS='--rounds 5 --duration 10'",
        "BENCH_WORKERS=4 make bench                  # worker processes per server (default 2)",
        "make bench BENCH_ARGS='--overhead-only --rounds 3 --duration 15'  # only the "
        "inference log overhead",
        ".venv/bin/python -m bench --report-only     # re-render this file from results.json",
        ".venv/bin/python -m bench --help            # every flag",
        "```",
        "",
        "Flags: `--rounds` (3), `--duration` seconds measured per run (5), `--warmup` (1), "
        "`--concurrency` (`1,8,32,64`), `--workers` (`$BENCH_WORKERS`, 2), `--peer-workers` "
        "(same as `--workers`), `--poll-interval` (1), `--swaps` (50), `--swap-clients`, "
        "`--loadgen auto|wrk|python`, `--no-matrix`, `--no-swaps`, `--no-overhead`, "
        "`--overhead-only` (keeps the other results), `--quick`. Benchmarks "
        "are not part of `make test`. The registry, server logs and payloads live in "
        "`bench/.work/` (not committed); raw per-round numbers in `bench/results.json`.",
        "",
        "This run: `" + settings.get("command", "python -m bench") + "`: "
        f"{settings['rounds']} round(s) x {_n(settings['duration_s'], 0)} s "
        f"(+{_n(settings['warmup_s'], 0)} s warm-up) per server and cell, concurrency "
        f"{', '.join(str(c) for c in settings['concurrency'])}, {settings['workers']} "
        f"worker(s) for stageserve and echo, {settings['peer_workers']} for the peer, "
        f"{settings['swaps']} swaps.",
    ]


def _machine(machine: dict[str, Any], results: dict[str, Any]) -> list[str]:
    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items())
    rows = [
        ["CPU", machine["cpu"]],
        ["cores", str(machine["cores"])],
        ["memory", f"{machine['memory_gib']} GiB"],
        ["kernel", machine["kernel"]],
        ["Python", machine["python"]],
        ["packages", packages],
        ["load generator", machine["load_generator"]],
        [
            "load average (1/5/15 min) at start, end",
            f"{machine.get('load_average_at_start')}, {results.get('load_average_at_end')}",
        ],
        ["date", results.get("started_at", "?")],
        ["bench duration", f"{_n(results.get('elapsed_s', math.nan) / 60, 1)} min"],
    ]
    return ["## Machine", "", *_table(["", ""], rows)]


def _method(results: dict[str, Any]) -> list[str]:
    s = results["settings"]
    return [
        "## Method",
        "",
        "- A real MLflow registry (SQLite backend, local artifact root) built fresh in "
        "`bench/.work/registry`: `bench-ridge` (Ridge) and `bench-forest` (100-tree "
        "RandomForestRegressor) trained on scikit-learn's diabetes data (10 float columns), "
        "each with a signature and an input example, in Production; `bench-swap`: three "
        "Ridge versions with alphas 0.01, 1 and 100.",
        "- Servers on 127.0.0.1, started together, each in its own session and stopped "
        "with all its processes at the end: the peer is "
        "`mlflow models serve -m models:/NAME/Production --env-manager local --workers W` "
        "(uvicorn; one per model; MLflow's default is 1 worker, and uvicorn's access log "
        "stays on, as users get it); stageserve is `stageserve serve --model bench-ridge "
        "--model bench-forest --target Production --workers W --poll-interval "
        f"{_n(s['poll_interval_s'], 0)}` (`POST /models/NAME/invocations`); echo is "
        "`bentoml serve bench.echo_service:Echo` with W workers, an async `@bentoml.api` "
        "that takes the parsed `dataframe_split` (BentoML maps top-level JSON keys to "
        "arguments) and answers one zero per row.",
        "- Before measuring, one request per server and payload must answer 200 with one "
        "prediction per row, and stageserve's predictions must equal the peer's.",
        "- Load: closed loop, HTTP/1.1 keep-alive, N connections each sending the next "
        "request when the previous answer arrives; one generator thread (`wrk -t1 "
        "--timeout 10s` with `bench/report.lua`, or `bench/loadgen.py`). Payloads: "
        "`dataframe_split` JSON with the first 1 or 32 rows of the data.",
        "- Every cell runs the peer and stageserve (and echo for 1-row Ridge) one after the "
        "other, alternating who goes first each round; each run is preceded by an "
        "unmeasured warm-up. Tables show the median over rounds of requests/s, p50 and p99, "
        "and errors summed over rounds (connect, read, write, timeout, status >= 400).",
        "- Swaps: a separate stageserve serving `bench-swap`, with closed-loop clients "
        "(one keep-alive connection each, spread over all workers) calling it while "
        "`transition_model_version_stage(..., archive_existing_versions=True)` moves the "
        "next version to Production. Delay: from the transition call returning to the first "
        "answer carrying the new version (`X-Model-Version`), on any worker and on all "
        "workers; the next transition waits for all workers. Memory: VmRSS of the workers "
        "after the first and the last swap. Load time: `load_duration_s` from "
        "`/admin/models`.",
        "- The machine is shared: other work running meanwhile (see the load average) makes "
        "the absolute numbers noisy; the alternating rounds keep the ratios fairer.",
    ]


def _throughput(cells: list[dict[str, Any]]) -> list[str]:
    header = [
        "model", "payload", "conns",
        "peer req/s", "peer p50 ms", "peer p99 ms", "peer err",
        "stageserve req/s", "stageserve p50 ms", "stageserve p99 ms", "stageserve err",
        "req/s ratio", "p50 ratio",
    ]  # fmt: skip
    rows = []
    for cell in cells:
        peer, ours = cell["median"]["peer"], cell["median"]["stageserve"]
        rows.append(
            [
                cell["model"], cell["payload"], str(cell["concurrency"]),
                _n(peer["rps"]), _n(peer["p50_ms"], 2), _n(peer["p99_ms"], 2),
                _n(peer["errors"], 0),
                _n(ours["rps"]), _n(ours["p50_ms"], 2), _n(ours["p99_ms"], 2),
                _n(ours["errors"], 0),
                _x(cell["ratio_rps"]),
                _x(cell["ratio_p50"]) if cell["concurrency"] == 1 else "",
            ]
        )  # fmt: skip
    return [
        "### Throughput and latency: stageserve vs `mlflow models serve`",
        "",
        "Ratios are stageserve / peer: above 1 is better for req/s, below 1 for p50 "
        "(shown at one connection).",
        "",
        *_table(header, rows),
    ]


def _cpu_table(cells: list[dict[str, Any]], workers: dict[str, int]) -> list[str]:
    rows = []
    for cell in cells:
        cpu = cell.get("cpu") or {}
        peer, ours = cpu.get("peer", {}), cpu.get("stageserve", {})
        rows.append(
            [
                cell["model"], cell["payload"], str(cell["concurrency"]),
                _n(peer.get("ms_per_request"), 2), _pct(peer.get("busiest_share")),
                _n(ours.get("ms_per_request"), 2), _pct(ours.get("busiest_share")),
            ]
        )  # fmt: skip
    header = [
        "model", "payload", "conns", "peer CPU ms/req", "peer busiest worker",
        "stageserve CPU ms/req", "stageserve busiest worker",
    ]  # fmt: skip
    return [
        "### CPU per request and worker balance",
        "",
        "CPU time of the servers' worker processes during the measured runs (from "
        "/proc/PID/stat), per request, and the busiest worker's share of it: "
        f"{_pct(1 / workers['stageserve'])} is an even spread over stageserve's "
        f"{workers['stageserve']} workers, {_pct(1 / workers['peer'])} over the peer's "
        f"{workers['peer']}, 100% means one worker took all the load (keep-alive "
        "connections stay on the worker that accepted them; with one connection that is "
        "always the case). Medians over rounds.",
        "",
        *_table(header, rows),
    ]


def _pct(value: Any) -> str:
    text = _n(None if value is None else value * 100, 0)
    return text if text == "-" else f"{text}%"


def _ceiling(cells: list[dict[str, Any]]) -> list[str]:
    rows = []
    for cell in cells:
        echo = cell["median"].get("echo")
        if not echo:
            continue
        ours = cell["median"]["stageserve"]
        rows.append(
            [
                str(cell["concurrency"]),
                _n(echo["rps"]), _n(echo["p50_ms"], 2), _n(echo["p99_ms"], 2),
                _n(echo["errors"], 0), _n(ours["rps"]), _n(cell["fraction_of_echo"], 2),
            ]
        )  # fmt: skip
    header = [
        "conns", "echo req/s", "echo p50 ms", "echo p99 ms", "echo err",
        "stageserve req/s", "fraction of echo",
    ]  # fmt: skip
    return [
        "### Framework ceiling: a bare BentoML service",
        "",
        "Same load (1-row payload) against `bench/echo_service.py`, which parses the body "
        "and answers a constant; stageserve here is `bench-ridge`, 1 row.",
        "",
        *_table(header, rows),
    ]


def _swaps(swaps: dict[str, Any]) -> list[str]:
    first, every = swaps["first_answer_s"], swaps["all_workers_s"]
    memory = swaps["memory"]

    def mib(kib: dict[str, int]) -> str:
        return _n(sum(kib.values()) / 1024, 1) if kib else "-"

    rows = [
        ["transitions completed", f"{swaps['completed']} (timed out: {swaps['timed_out']})"],
        ["poll interval", f"{_n(swaps['poll_interval_s'], 1)} s"],
        ["delay to first new answer p50 / p95 / max", _spread(first)],
        ["delay until all workers answer with it p50 / p95 / max", _spread(every)],
        [
            "load time (`load_duration_s`) median / max",
            f"{_n(swaps['load_duration_s']['median'], 3)} / "
            f"{_n(swaps['load_duration_s']['max'], 3)} s",
        ],
        ["requests during the swaps / failed", f"{swaps['requests']} / {swaps['errors']}"],
        ["clients, workers watched", f"{swaps['clients']}, {len(swaps['watched_workers'])}"],
        ["worker RSS after the first swap", f"{mib(memory['after_first_kib'])} MiB"],
        [
            f"worker RSS after swap {memory.get('swaps_at_last')}",
            f"{mib(memory['after_last_kib'])} MiB",
        ],
        ["RSS ratio last / first", _n(memory.get("ratio"), 3)],
    ]
    return ["### Hot swaps under load (stageserve only)", "", *_table(["", ""], rows)]


def _spread(values: dict[str, float]) -> str:
    return f"{_n(values['p50'], 3)} / {_n(values['p95'], 3)} / {_n(values['max'], 3)} s"


OVERHEAD_ARMS = {"plain": "log off, no feedback", "logged": "log 100% + feedback"}


def _overhead_method(overhead: dict[str, Any]) -> list[str]:
    return [
        "Two `stageserve serve --model bench-ridge --target Production --workers "
        f"{overhead['workers']}` gateways side by side, identical but for the inference log: "
        "*plain* (log off, no feedback sent) and *logged* "
        "(`STAGESERVE_INFERENCE_LOG_DIR` set, `STAGESERVE_INFERENCE_LOG_SAMPLE=1`, Parquet "
        "files only, other log settings at their defaults). Both require a feedback token.",
        "",
        f"- Load: `wrk -t1 -c{overhead['concurrency']}` with `bench/report.lua` on the "
        f"{overhead['payload']} payload, {_n(overhead['duration_s'], 0)} s per run after a "
        f"{_n(overhead['warmup_s'], 0)} s warm-up. With `BENCH_IDS_FILE` set the script also "
        "appends each answer's `X-Feedback-Id` to a file (wrk's `response()` callback); "
        "both arms run it, so wrk does the same work in both and the ratio is fair.",
        "- Feedback: during the logged arm's runs (warm-up included) a thread of the bench "
        "follows that file and posts one item per answer (a 0/1 reward and a truth) to "
        "`POST /models/bench-ridge/feedback` in batches of 100: feedback at the prediction "
        "rate, for real answers, as a labelling pipeline sends it. Why wrk's ids rather "
        "than a Python side client making its own predictions: the feedback then refers to "
        "the very answers under load, at their rate, and the load generator stays the "
        "matrix's (a Python client would add a second, CPU-hungry load source).",
        "- Order: ABBA (plain, logged, logged, plain, ...), so a machine that speeds up or "
        "slows down over the runs favours neither arm; the ratio is of the medians.",
        "- Checked afterwards: the feedback answers' `accepted` counts; the logged "
        "gateway's `stageserve_inference_log_*` and `stageserve_feedback_*` counters "
        "(read from `/metrics` before it stops); then, after its SIGTERM (which flushes the "
        "log), the Parquet files read with pandas: every answer wrk recorded is a "
        "prediction row and every accepted item a feedback row. The files hold a few more "
        "predictions than wrk recorded: the pre-run check's, and those in flight when each "
        "wrk run stopped (answered and logged, not counted by wrk).",
    ]


def _overhead_runs(overhead: dict[str, Any]) -> list[str]:
    seen = dict.fromkeys(overhead["runs"], 0)
    rows = []
    for position, arm in enumerate(overhead["order"], 1):
        run = overhead["runs"][arm][seen[arm]]
        used = sum(overhead["worker_cpu_s"][arm][seen[arm]].values())
        seen[arm] += 1
        cpu = used * 1000 / run["requests"] if run["requests"] else math.nan
        rows.append(
            [
                str(position), OVERHEAD_ARMS.get(arm, arm), _n(run["rps"]),
                _n(run["p50_ms"], 2), _n(run["p99_ms"], 2), str(run["errors_total"]), _n(cpu, 2),
            ]
        )  # fmt: skip
    header = ["run", "gateway", "req/s", "p50 ms", "p99 ms", "errors", "worker CPU ms/req"]
    return _table(header, rows)


def _overhead_medians(overhead: dict[str, Any]) -> list[str]:
    rows = []
    for arm, median in overhead["median"].items():
        cpu = overhead.get("cpu", {}).get(arm, {})
        rows.append(
            [
                OVERHEAD_ARMS.get(arm, arm), _n(median["rps"]), _n(median["p50_ms"], 2),
                _n(median["p99_ms"], 2), _n(median["errors"], 0),
                _n(cpu.get("ms_per_request"), 2),
            ]
        )  # fmt: skip
    cpu = overhead.get("cpu", {})
    cpu_ratio = ratio(
        number(cpu.get("logged", {}).get("ms_per_request")),
        number(cpu.get("plain", {}).get("ms_per_request")),
    )
    rows.append(
        [
            "**ratio logged / plain**", f"**{_n(overhead['ratio_rps'], 3)}**",
            _n(overhead["ratio_p50"], 3), _n(overhead["ratio_p99"], 3), "", _n(cpu_ratio, 3),
        ]
    )  # fmt: skip
    header = ["gateway (medians)", "req/s", "p50 ms", "p99 ms", "errors", "worker CPU ms/req"]
    return _table(header, rows)


def _overhead_checks(overhead: dict[str, Any]) -> list[str]:
    feedback, log, metrics = overhead["feedback"], overhead["log"], overhead["metrics"]

    def counts(values: dict[str, float]) -> str:
        shown = [f"{key} {_n(value, 0)}" for key, value in values.items() if value]
        return ", ".join(shown) or "0"

    rows = [
        [
            "feedback items sent / accepted / duplicates / refused",
            f"{feedback['sent']} / {feedback['accepted']} / {feedback['duplicates']} / "
            f"{feedback['refused']}",
        ],
        ["feedback posts / failed", f"{feedback['posts']} / {feedback['failed_posts']}"],
        [
            "Parquet prediction rows / answers wrk recorded / recorded but missing",
            f"{log['prediction_rows']} / {log['answers_recorded']} / {log['answers_missing']}",
        ],
        [
            "Parquet feedback rows (= accepted?) / without a prediction row",
            f"{log['feedback_rows']} ({'yes' if log['feedback_rows_equal_accepted'] else 'NO'})"
            f" / {log['feedback_without_prediction']}",
        ],
        ["`stageserve_inference_log_rows_total` before the stop", counts(metrics["rows"])],
        ["`stageserve_inference_log_dropped_total`", counts(metrics["dropped"])],
        ["`stageserve_feedback_total` (model/result/target/version)", counts(metrics["feedback"])],
        ["`stageserve_feedback_refused_total`", counts(metrics["refused"])],
    ]
    return _table(["check", "value"], rows)


def _busy_warning(overhead: dict[str, Any]) -> list[str]:
    """A run that started on a machine busier than its cores measured the machine as much
    as the log. Only the load before the run says so: the one after is the bench's own."""
    cores = overhead["machine"].get("cores") or 1
    before = (overhead.get("load_average") or [None])[0]
    if not before or before[0] <= cores:
        return []
    return [
        "",
        f"> **Measured on a busy, shared machine** (1-minute load average "
        f"{before[0]:g} on {cores} cores before the run): the runs' req/s vary with the "
        "other work more than with the log; worker CPU per request is the steadier sign "
        "of the log's cost. "
        "Re-run on a quiet machine with the command above for figures to quote.",
    ]


def _overhead(overhead: dict[str, Any]) -> list[str]:
    before, after = overhead.get("load_average", [None, None])
    return [
        "### Inference log and feedback overhead (stageserve only)",
        "",
        f"Command: `{overhead.get('command', 'python -m bench --overhead-only')}`, "
        f"{overhead.get('started_at', '?')}, {overhead['machine']['cores']} cores, "
        f"load average (1/5/15 min) {before} before and {after} after.",
        *_busy_warning(overhead),
        "",
        *_overhead_method(overhead),
        "",
        *_overhead_runs(overhead),
        "",
        *_overhead_medians(overhead),
        "",
        *_overhead_checks(overhead),
    ]


def render(results: dict[str, Any], notes: str | None = None) -> str:
    settings = results["settings"]
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by `make bench` (bench/report.py). Edit only the Notes section at "
        "the end: it is kept when the file is regenerated. -->",
        "",
        "stageserve against MLflow's own scoring server (`mlflow models serve`) on the same "
        "models, machine and load, with a bare BentoML service as the framework ceiling, "
        "and the cost of hot swaps.",
    ]
    if settings.get("quick"):
        lines += [
            "",
            "> **Quick run** (`--quick`: one short round, few concurrencies): for "
            "developing the bench, not a result to quote.",
        ]
    lines += ["", *_how_to_run(settings), "", *_machine(results["machine"], results)]
    lines += ["", *_method(results), "", "## Results", ""]
    verification = results.get("verification") or []
    mismatched = [v for v in verification if not v.get("predictions_equal")]
    if verification:
        lines += [
            "Checked before measuring: every server answered 200 with one prediction per row; "
            + (
                "stageserve's predictions equal the peer's."
                if not mismatched
                else "**stageserve's predictions differ from the peer's for "
                + ", ".join(f"{v['model']} {v['payload']}" for v in mismatched)
                + "**."
            ),
            "",
        ]
    cells = results.get("cells") or []
    if cells:
        workers = {"stageserve": settings["workers"], "peer": settings["peer_workers"]}
        lines += [*_throughput(cells), "", *_cpu_table(cells, workers), ""]
        lines += [*_ceiling(cells), ""]
    else:
        lines += ["_The throughput matrix was not run._", ""]
    if results.get("swaps"):
        lines += [*_swaps(results["swaps"]), ""]
    else:
        lines += ["_The swap benchmark was not run._", ""]
    if results.get("overhead"):
        lines += [*_overhead(results["overhead"]), ""]
    else:
        lines += ["_The inference log overhead benchmark was not run._", ""]
    goals = evaluate(results)
    lines += [
        "## Goals",
        "",
        *_table(
            ["", "goal", "measured", "verdict"],
            [[g.id, g.text, g.measured, f"**{g.verdict}**"] for g in goals],
        ),
        "",
        "## Notes",
        "",
        NOTES_START,
        notes if notes is not None else DEFAULT_NOTES,
        NOTES_END,
        "",
    ]
    return "\n".join(lines)


def write(path: Path, results: dict[str, Any]) -> None:
    """Render to ``path``, keeping the Notes of the file already there."""
    notes = extract_notes(path.read_text()) if path.exists() else None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(results, notes))
