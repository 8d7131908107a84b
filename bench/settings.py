"""The bench's settings: command-line flags (and ``BENCH_WORKERS``), with ``--quick``
shrinking the matrix for development."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "bench"
DEFAULT_CONCURRENCY = (1, 8, 32, 64)
QUICK_CONCURRENCY = (1, 32)


@dataclass(frozen=True)
class Settings:
    rounds: int
    duration_s: float
    warmup_s: float
    concurrency: tuple[int, ...]
    workers: int
    peer_workers: int
    poll_interval_s: float
    loadgen: str  # "auto", "wrk" or "python"
    swaps: int
    swap_clients: int
    run_matrix: bool
    run_swaps: bool
    run_overhead: bool
    overhead_only: bool  # the other sections of results.json are kept
    quick: bool
    work_dir: Path
    results_path: Path
    doc_path: Path
    report_only: bool

    def estimated_minutes(self) -> float:
        """Rough wall time: the measured runs (peer and stageserve per cell, echo in the
        1-row Ridge cells), plus server start-up and the swaps (about 1 s each)."""
        runs_per_round = len(self.concurrency) * (2 * 2 * 2 + 1) if self.run_matrix else 0
        seconds = self.rounds * runs_per_round * (self.warmup_s + self.duration_s + 0.2)
        seconds += 60 if self.run_matrix else 0
        seconds += (20 + 1.2 * self.swaps) if self.run_swaps else 0
        if self.run_overhead:  # two gateways, then both arms each round
            seconds += 30 + self.rounds * 2 * (self.warmup_s + self.duration_s + 0.5)
        return (seconds + 15) / 60

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("work_dir", "results_path", "doc_path"):
            out[key] = str(out[key])
        out["concurrency"] = list(self.concurrency)
        return out


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def _concurrency_list(text: str) -> tuple[int, ...]:
    return tuple(_positive_int(part) for part in text.split(",") if part.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark stageserve against `mlflow models serve` and a bare BentoML "
        "service; writes bench/results.json and docs/benchmarks.md.",
    )
    parser.add_argument("--rounds", type=_positive_int, default=None, help="rounds per cell (3)")
    parser.add_argument(
        "--duration",
        type=_positive_float,
        default=None,
        help="seconds measured per run (5; whole seconds with wrk)",
    )
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds of unmeasured load before each run (1)"
    )
    parser.add_argument(
        "--concurrency",
        type=_concurrency_list,
        default=None,
        help="comma-separated connection counts (1,8,32,64)",
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="worker processes per server (default $BENCH_WORKERS or 2)",
    )
    parser.add_argument(
        "--peer-workers",
        type=_positive_int,
        default=None,
        help="workers of `mlflow models serve` (default: the same as --workers)",
    )
    parser.add_argument(
        "--poll-interval", type=_positive_float, default=1.0, help="stageserve's poll (1 s)"
    )
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="wrk (installed with apt-get when missing and root), the Python fallback, "
        "or auto: wrk when available",
    )
    parser.add_argument(
        "--swaps", type=_positive_int, default=None, help="registry transitions timed (50)"
    )
    parser.add_argument(
        "--swap-clients", type=_positive_int, default=None, help="clients during swaps (2/worker)"
    )
    parser.add_argument("--no-matrix", action="store_true", help="skip the throughput matrix")
    parser.add_argument("--no-swaps", action="store_true", help="skip the swap benchmark")
    parser.add_argument(
        "--no-overhead", action="store_true", help="skip the inference log overhead benchmark"
    )
    parser.add_argument(
        "--overhead-only",
        action="store_true",
        help="run only the inference log overhead benchmark (--rounds pairs of --duration "
        "s); the other results in results.json are kept",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="development run: 1 round, 2 s, concurrency 1 and 32, 10 swaps",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="only regenerate docs/benchmarks.md from the existing results.json",
    )
    parser.add_argument("--work-dir", type=Path, default=BENCH_DIR / ".work")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results.json")
    parser.add_argument("--doc", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md")
    return parser


def settings_from_args(
    argv: Sequence[str] | None = None, environ: dict[str, str] | None = None
) -> Settings:
    """Explicit flags win over ``--quick``, which wins over the defaults."""
    args = build_parser().parse_args(argv)
    env = os.environ if environ is None else environ
    quick = args.quick
    workers = args.workers or _positive_int(env.get("BENCH_WORKERS", "2"))
    return Settings(
        rounds=args.rounds or (1 if quick else 3),
        duration_s=args.duration or (2.0 if quick else 5.0),
        warmup_s=max(0.0, args.warmup),
        concurrency=args.concurrency or (QUICK_CONCURRENCY if quick else DEFAULT_CONCURRENCY),
        workers=workers,
        peer_workers=args.peer_workers or workers,
        poll_interval_s=args.poll_interval,
        loadgen=args.loadgen,
        swaps=args.swaps or (10 if quick else 50),
        swap_clients=args.swap_clients or max(4, 2 * workers),
        run_matrix=not (args.no_matrix or args.overhead_only),
        run_swaps=not (args.no_swaps or args.overhead_only),
        run_overhead=not args.no_overhead or args.overhead_only,
        overhead_only=args.overhead_only,
        quick=quick,
        work_dir=args.work_dir.resolve(),
        results_path=args.results.resolve(),
        doc_path=args.doc.resolve(),
        report_only=args.report_only,
    )
