"""The ``stageserve`` command: ``serve`` runs the gateway, ``demo`` runs it on a local
registry seeded with a demo model, ``traffic`` reads and writes traffic policies,
``webhooks`` registers the MLflow webhook."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from service.cli_common import registry_uri
from service.config import ConfigError, Settings
from service.traffic_cli import add_traffic_parser, run_traffic
from service.webhooks_cli import add_webhooks_parser, run_webhooks

SERVICE_IMPORT = "service.bento_service:StageServe"


def _add_serve_options(parser: argparse.ArgumentParser, demo: bool = False) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3000, help="port (default 3000)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default 1)")
    parser.add_argument(
        "--poll-interval", type=float, default=None, help="seconds between registry polls (2)"
    )
    if demo:
        return
    parser.add_argument(
        "--registry-uri",
        default=None,
        help="MLflow registry/tracking URI (default: $MLFLOW_TRACKING_URI)",
    )
    parser.add_argument(
        "--model", action="append", default=[], metavar="NAME", help="model to serve (repeatable)"
    )
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="TARGET",
        help="stage, @alias or version to serve (repeatable; default Production then Staging; "
        "the first is required for readiness)",
    )
    parser.add_argument("--model-dir", default=None, help="where downloaded versions are kept")
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
    try:
        settings = Settings.from_env(env)
    except ConfigError as exc:
        print(f"stageserve: {exc}", file=sys.stderr)
        return 2
    if not settings.registry_uri:
        print(
            "stageserve: no registry: set MLFLOW_TRACKING_URI or pass --registry-uri",
            file=sys.stderr,
        )
        return 2
    repo_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root, env.get("PYTHONPATH")) if p)
    env.setdefault("BENTOML_DO_NOT_TRACK", "true")
    # One folder for all workers of this gateway: webhook fan-out and replay ids. Keyed
    # by user and port (two live gateways cannot share a port), so a restart reuses it.
    runtime_dir = env.setdefault("STAGESERVE_RUNTIME_DIR", default_runtime_dir(port))
    os.makedirs(runtime_dir, mode=0o700, exist_ok=True)
    # BentoML keeps Prometheus multiprocess files in $BENTOML_HOME and wipes them when a
    # server starts: a second gateway on the same host would erase this one's metrics.
    env.setdefault("BENTOML_HOME", os.path.join(runtime_dir, "bentoml"))
    command = [
        sys.executable, "-m", "bentoml", "serve", SERVICE_IMPORT,
        "--host", host, "--port", str(port), "--working-dir", repo_root,
    ]  # fmt: skip
    print(
        f"stageserve: serving {', '.join(settings.models)} "
        f"({', '.join(t.text for t in settings.targets)}) from {settings.registry_uri} "
        f"on http://{host}:{port}",
        file=sys.stderr,
        flush=True,
    )
    os.execve(sys.executable, command, env)
    return 0  # not reached


def run_demo(args: argparse.Namespace) -> int:
    from service.demo import DEMO_MODEL, DemoRegistry, seed

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
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return run_gateway(serve_env(args, dict(os.environ)), args.host, args.port)
    if args.command == "traffic":
        return run_traffic(args, registry_uri(args.registry_uri))
    if args.command == "webhooks":
        secret = os.environ.get("STAGESERVE_WEBHOOK_SECRET")
        return run_webhooks(args, registry_uri(args.registry_uri), secret)
    return run_demo(args)


if __name__ == "__main__":
    sys.exit(main())
