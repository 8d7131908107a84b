"""The ``stageserve`` command: ``serve`` runs the gateway, ``demo`` runs it on a local
registry seeded with a demo model, ``traffic`` reads and writes traffic policies,
``webhooks`` registers the MLflow webhook."""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from registry_watcher.redact import configured_secrets, redact_text
from registry_watcher.targets import InvalidTarget, parse_target, require_mlflow_stage
from service.cli.common import registry_uri, resolve_paths, say
from service.cli.gateway_guard import GuardError, check_port_free, hold_runtime_dir
from service.cli.traffic import add_traffic_parser, run_traffic
from service.cli.webhooks import add_webhooks_parser, run_webhooks
from service.config import ConfigError, Settings
from service.ops import log_redaction

SERVICE_IMPORT = "service.bento_service:StageServe"
MIN_POLL_INTERVAL_S = 0.05  # the same floor as STAGESERVE_POLL_INTERVAL's


# Flag types: an impossible value is refused at once, naming the flag (argparse adds it).
def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return port


def worker_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: at least 1 worker is needed")
    return count


def poll_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < MIN_POLL_INTERVAL_S:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a finite number of seconds, at least {MIN_POLL_INTERVAL_S}"
        )
    return seconds


def target_text(text: str) -> str:
    """A target as typed: a known MLflow stage, an @alias or a version number."""
    try:
        return require_mlflow_stage(parse_target(text)).text
    except InvalidTarget as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def model_name(text: str) -> str:
    name = text.strip()
    if not name:
        raise argparse.ArgumentTypeError("a model name cannot be empty")
    if "," in name:
        raise argparse.ArgumentTypeError(f"{text!r}: repeat --model for each model")
    return name


def non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("cannot be empty")
    return text.strip()


def _add_serve_options(parser: argparse.ArgumentParser, demo: bool = False) -> None:
    parser.add_argument(
        "--host", type=non_empty, default="127.0.0.1", help="address to bind (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=port_number, default=3000, help="port (default 3000)")
    parser.add_argument(
        "--workers", type=worker_count, default=None, help="worker processes (default 1)"
    )
    parser.add_argument(
        "--poll-interval", type=poll_seconds, default=None, help="seconds between polls (2)"
    )
    if demo:
        return
    parser.add_argument(
        "--registry-uri",
        type=non_empty,
        default=None,
        help="MLflow registry/tracking URI (default: $MLFLOW_TRACKING_URI)",
    )
    parser.add_argument(
        "--model",
        action="append",
        type=model_name,
        default=[],
        metavar="NAME",
        help="model to serve (repeatable)",
    )
    parser.add_argument(
        "--target",
        action="append",
        type=target_text,
        default=[],
        metavar="TARGET",
        help="stage, @alias or version to serve (repeatable; default Production then Staging; "
        "the first is required for readiness)",
    )
    parser.add_argument(
        "--model-dir", type=non_empty, default=None, help="where downloaded versions are kept"
    )
    parser.add_argument(
        "--no-smoke-test", action="store_true", help="do not smoke-test versions before swapping"
    )
    parser.add_argument(
        "--on-empty",
        choices=("keep", "unload"),
        default=None,
        help="when the registry names no version for a required target any more (model "
        "deleted or renamed, stage or alias emptied): keep serving the version it has, "
        "flagged stale (default), or unload it",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stageserve",
        description="Serve MLflow models by registry stage or alias, hot-swapped.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    _add_serve_options(serve)
    demo = sub.add_parser("demo", help="seed a local registry with a demo model and serve it")
    demo.add_argument(
        "--dir",
        default="demo-registry",
        help="folder of the demo registry (default ./demo-registry)",
    )
    demo.add_argument("--seed-only", action="store_true", help="seed the registry, do not serve")
    _add_serve_options(demo, demo=True)
    add_traffic_parser(sub)
    add_webhooks_parser(sub)
    return parser


def serve_env(args: argparse.Namespace, base: dict[str, str]) -> dict[str, str]:
    """The environment the gateway's workers read their settings from."""
    env = dict(base)
    if getattr(args, "registry_uri", None):
        env["STAGESERVE_REGISTRY_URI"] = args.registry_uri
    if getattr(args, "model", None):
        env["STAGESERVE_MODELS"] = ",".join(args.model)
    if getattr(args, "target", None):
        env["STAGESERVE_TARGETS"] = ",".join(args.target)
    if args.workers is not None:
        env["STAGESERVE_WORKERS"] = str(args.workers)
    if args.poll_interval is not None:
        env["STAGESERVE_POLL_INTERVAL"] = str(args.poll_interval)
    if getattr(args, "model_dir", None):
        env["STAGESERVE_MODEL_DIR"] = args.model_dir
    if getattr(args, "no_smoke_test", False):
        env["STAGESERVE_SMOKE_TEST"] = "false"
    if getattr(args, "on_empty", None):
        env["STAGESERVE_ON_EMPTY"] = args.on_empty
    return env


def default_runtime_dir(port: int) -> str:
    return os.path.join(tempfile.gettempdir(), f"stageserve-{os.getuid()}-{port}")


def run_gateway(env: dict[str, str], host: str, port: int) -> int:
    """Validate the settings, then become ``bentoml serve`` (signals go straight to it)."""
    # Workers run in the checkout (--working-dir): relative paths mean the caller's.
    env = resolve_paths(env, os.getcwd())
    try:
        settings = Settings.from_env(env)
    except ConfigError as exc:
        say(str(exc))
        return 2
    if not settings.registry_uri:
        say("no registry: set MLFLOW_TRACKING_URI or pass --registry-uri")
        return 2
    repo_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root, env.get("PYTHONPATH")) if p)
    env.setdefault("BENTOML_DO_NOT_TRACK", "true")
    # One folder for all workers of this gateway: webhook fan-out and replay ids. Keyed
    # by user and port (two live gateways cannot share a port), so a restart reuses it.
    runtime_dir = env.setdefault("STAGESERVE_RUNTIME_DIR", default_runtime_dir(port))
    try:  # before BentoML wipes anything in the runtime folder of a running gateway
        check_port_free(host, port)
        hold_runtime_dir(runtime_dir)
    except GuardError as exc:
        say(str(exc))
        return 1
    # BentoML keeps Prometheus multiprocess files in $BENTOML_HOME and wipes them when a
    # server starts: a second gateway on the same host would erase this one's metrics.
    env.setdefault("BENTOML_HOME", os.path.join(runtime_dir, "bentoml"))
    command = [
        sys.executable, "-m", "bentoml", "serve", SERVICE_IMPORT,
        "--host", host, "--port", str(port), "--working-dir", repo_root,
    ]  # fmt: skip
    banner = (
        f"stageserve: serving {', '.join(settings.models)} "
        f"({', '.join(t.text for t in settings.targets)}) from {settings.registry_uri} "
        f"on http://{host}:{port}"
    )
    print(redact_text(banner, configured_secrets(env)), file=sys.stderr, flush=True)
    os.execve(sys.executable, command, env)
    return 0  # not reached


def run_demo(args: argparse.Namespace) -> int:
    from service.cli.demo import DEMO_MODEL, DemoRegistry, seed

    if not args.seed_only:
        try:  # say it before a minute of seeding, not after
            check_port_free(args.host, args.port)
        except GuardError as exc:
            say(str(exc))
            return 1
    registry = DemoRegistry(Path(args.dir).resolve())
    print(f"stageserve demo: registry in {registry.root}", file=sys.stderr, flush=True)
    if seed(registry):
        print("stageserve demo: seeded diabetes v1 (Production), v2 (Staging)", file=sys.stderr)
    if args.seed_only:
        return 0
    env = serve_env(args, dict(os.environ))
    env["STAGESERVE_REGISTRY_URI"] = registry.tracking_uri
    env["STAGESERVE_MODELS"] = DEMO_MODEL
    env.setdefault("STAGESERVE_TARGETS", "Production,Staging")
    base = f"http://{args.host}:{args.port}"
    print(
        "stageserve demo: try\n"
        f"  curl -s {base}/invocations -H 'Content-Type: application/json' "
        '-d \'{"dataframe_split": {"columns": ["age","sex","bmi","bp","s1","s2",'
        '"s3","s4","s5","s6"], "data": [[0.04,0.05,0.06,0.02,-0.04,-0.03,-0.04,0.0,'
        "0.02,-0.02]]}}' -i\n"
        f"  (add -H 'X-Model-Target: Staging' for version 2), and {base}/admin/models",
        file=sys.stderr,
        flush=True,
    )
    return run_gateway(env, args.host, args.port)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # a refused flag (2) or --help (0): argparse printed why
        return exc.code if isinstance(exc.code, int) else 2
    if args.command == "serve":
        return run_gateway(serve_env(args, dict(os.environ)), args.host, args.port)
    log_redaction.protect(os.environ)  # MLflow's own log lines quote registry URLs
    if args.command == "traffic":
        return run_traffic(args, registry_uri(args.registry_uri))
    if args.command == "webhooks":
        secret = os.environ.get("STAGESERVE_WEBHOOK_SECRET")
        return run_webhooks(args, registry_uri(args.registry_uri), secret)
    return run_demo(args)


if __name__ == "__main__":
    sys.exit(main())
