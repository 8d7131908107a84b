"""``python -m bench`` (``make bench``): build the registry, start the servers, run the
throughput matrix, the swap benchmark and the inference log overhead benchmark, write
bench/results.json and docs/benchmarks.md. Every server is stopped on the way out,
whatever happens."""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

from bench import machine, report, servers
from bench.goals import evaluate
from bench.loadgen import PythonLoad
from bench.matrix import Cell, LoadGenerator, VerificationError, run_cell, verify
from bench.overhead import run_overhead
from bench.payloads import Payload, write_payloads
from bench.registry import FOREST, RIDGE, SWAP, build
from bench.settings import Settings, settings_from_args
from bench.swaps import run_swaps
from bench.wrk import Wrk, find_wrk
from service.cli.diabetes_registry import DiabetesRegistry

_T0 = time.monotonic()


def say(message: str) -> None:
    print(f"[bench {time.monotonic() - _T0:7.1f} s] {message}", file=sys.stderr, flush=True)


def choose_load_generator(choice: str) -> LoadGenerator:
    if choice in ("auto", "wrk"):
        binary = find_wrk(install=True)
        if binary:
            return Wrk(binary)
        if choice == "wrk":
            raise SystemExit("bench: wrk is not installed and could not be installed")
        say("wrk unavailable (not installed, not root or no apt-get): Python load generator")
    return PythonLoad()


def _started(stack: ExitStack, group: Sequence[servers.Server]) -> None:
    """Launch together (their start-up overlaps), then wait for each to be ready."""
    for server in group:
        server.launch()
        stack.callback(server.stop)
    for server in group:
        started = time.monotonic()
        server.wait_ready()
        say(f"{server.name} ready on :{server.port} (waited {time.monotonic() - started:.1f} s)")


def run_matrix(
    settings: Settings,
    registry: DiabetesRegistry,
    payloads: dict[str, Payload],
    load: LoadGenerator,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with ExitStack() as stack:
        work = settings.work_dir
        peers = {
            m: servers.peer(m, registry.uri, settings.peer_workers, work) for m in (RIDGE, FOREST)
        }
        ours = servers.stageserve(
            [RIDGE, FOREST], registry.uri, settings.workers, settings.poll_interval_s, work
        )
        echo = servers.echo(settings.workers, work)
        _started(stack, [*peers.values(), ours, echo])
        say(f"stageserve workers ready: {ours.wait_workers_ready(settings.workers)}")
        peer_pids = {m: p.worker_pids() for m, p in peers.items()}
        pids = {"stageserve": ours.worker_pids(), "echo": echo.worker_pids()}
        say(f"worker pids: {pids} peer: {peer_pids}")

        def cell(model: str, payload: Payload, concurrency: int, with_echo: bool) -> Cell:
            urls = {
                "peer": peers[model].invocations_url,
                "stageserve": ours.base_url + servers.stageserve_path(model),
            }
            workers = {"peer": peer_pids[model], "stageserve": pids["stageserve"]}
            if with_echo:
                urls["echo"], workers["echo"] = echo.invocations_url, pids["echo"]
            return Cell(model, payload, concurrency, urls, workers)

        verification = []
        for model in (RIDGE, FOREST):
            for payload in payloads.values():
                check = verify(cell(model, payload, 1, with_echo=model == RIDGE))
                verification.append(check)
                if not check["predictions_equal"]:
                    say(f"WARNING: stageserve and the peer disagree on {model} {payload.name}")
        say("verified: every server answers 200 with one prediction per row")
        cells = []
        for model in (RIDGE, FOREST):
            for payload in payloads.values():
                # The echo ceiling takes the same load as the 1-row Ridge cells.
                with_echo = model == RIDGE and payload.rows == 1
                for concurrency in settings.concurrency:
                    measured = run_cell(
                        load,
                        cell(model, payload, concurrency, with_echo),
                        settings.rounds,
                        settings.duration_s,
                        settings.warmup_s,
                        say,
                    )
                    cells.append(measured)
        return verification, cells


def run_swap_bench(
    settings: Settings, registry: DiabetesRegistry, versions: list[str], payload: Payload
) -> dict[str, Any]:
    with ExitStack() as stack:
        gateway = servers.stageserve(
            [SWAP], registry.uri, settings.workers, settings.poll_interval_s, settings.work_dir
        )
        _started(stack, [gateway])
        workers = gateway.wait_workers_ready(settings.workers)
        say(f"swap gateway workers ready: {workers}")
        return run_swaps(
            registry,
            versions,
            gateway.base_url,
            payload.body,
            workers,
            settings.swaps,
            settings.swap_clients,
            settings.poll_interval_s,
            say,
        )


def run_overhead_bench(
    settings: Settings, registry: DiabetesRegistry, payload: Payload, load: LoadGenerator
) -> dict[str, Any] | None:
    """The overhead benchmark needs wrk (its script records the answers' feedback ids)."""
    if not isinstance(load, Wrk):
        say("overhead benchmark skipped: it needs wrk (--loadgen wrk)")
        return None
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = machine.load_average()
    measured = run_overhead(settings, registry.uri, payload, load, say)
    return {
        **measured,
        "started_at": started,
        "load_average": [load_before, machine.load_average()],
        "machine": machine.describe(load.version),
    }


def _previous(settings: Settings) -> dict[str, Any]:
    """The results already written, for a run that replaces only its own section."""
    if settings.overhead_only and settings.results_path.exists():
        previous: dict[str, Any] = json.loads(settings.results_path.read_text())
        return previous
    return {}


def _json_safe(value: Any) -> Any:
    """NaN is not JSON: missing numbers become null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _print_goals(results: dict[str, Any]) -> None:
    for goal in evaluate(results):
        print(f"  ({goal.id}) {goal.verdict:<4}  {goal.text}: {goal.measured}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    settings = settings_from_args(argv)
    results: dict[str, Any]
    if settings.report_only:
        results = json.loads(settings.results_path.read_text())
        report.write(settings.doc_path, results)
        say(f"wrote {settings.doc_path} from {settings.results_path}")
        _print_goals(results)
        return 0
    # A plain `kill` must still stop every server: turn SIGTERM into an exit that unwinds.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load = choose_load_generator(settings.loadgen)
    say(f"load generator: {load.version}; expect about {settings.estimated_minutes():.0f} min")
    command = " ".join(["python -m bench", *argv])
    results = _previous(settings) or {
        "settings": {**settings.as_dict(), "command": command},
        "machine": machine.describe(load.version),
        "started_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    say(f"building the registry in {settings.work_dir / 'registry'}")
    registry, swap_versions = build(settings.work_dir / "registry")
    payloads = write_payloads(settings.work_dir)
    try:
        if settings.run_matrix:
            say("throughput matrix")
            results["verification"], results["cells"] = run_matrix(
                settings, registry, payloads, load
            )
        if settings.run_swaps:
            say("swap benchmark")
            swap_payload = payloads["1-row"]
            results["swaps"] = run_swap_bench(settings, registry, swap_versions, swap_payload)
        if settings.run_overhead:
            say("inference log overhead benchmark")
            overhead = run_overhead_bench(settings, registry, payloads["1-row"], load)
            if overhead is not None:
                results["overhead"] = {**overhead, "command": command}
    except (servers.ServerError, VerificationError) as exc:
        say(f"stopped: {exc}\n(server logs in {settings.work_dir / 'logs'})")
        return 1
    if not settings.overhead_only:
        results["elapsed_s"] = round(time.monotonic() - _T0, 1)
        results["load_average_at_end"] = machine.load_average()
    results = _json_safe(results)
    settings.results_path.write_text(json.dumps(results, indent=2) + "\n")
    report.write(settings.doc_path, results)
    say(f"wrote {settings.results_path} and {settings.doc_path}")
    _print_goals(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
