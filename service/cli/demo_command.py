"""``stageserve demo``: seed a local registry with the demo model (service/cli/demo.py),
optionally from scratch (``--reset``, service/cli/demo_reset.py), print what to try
against the registry as it is now (service/cli/demo_hint.py), then serve it like
``stageserve serve`` would."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from registry_watcher.targets import InvalidTarget
from service.cli.common import say
from service.cli.demo_hint import Reach, hint_lines
from service.cli.gateway_guard import GuardError, check_port_free
from service.cli.serve_command import run_gateway
from service.cli.serve_options import add_serve_options, serve_env


def add_demo_parser(sub: Any) -> None:
    demo = sub.add_parser("demo", help="seed a local registry with a demo model and serve it")
    demo.add_argument(
        "--dir",
        default="demo-registry",
        help="folder of the demo registry (default ./demo-registry)",
    )
    demo.add_argument("--seed-only", action="store_true", help="seed the registry, do not serve")
    demo.add_argument(
        "--reset",
        action="store_true",
        help="start from a fresh demo registry: delete the demo's database and artifacts in "
        "--dir (refused if the folder holds anything else), then seed",
    )
    add_serve_options(demo, demo=True)


def run_demo(args: argparse.Namespace) -> int:
    from service.cli import demo  # MLflow: only when asked
    from service.cli.demo_reset import NotADemoRegistry, reset

    if not args.seed_only:
        try:  # say it before a minute of seeding, not after
            check_port_free(args.host, args.port)
        except GuardError as exc:
            say(str(exc))
            return 1
    registry = demo.DemoRegistry(Path(args.dir).resolve())
    if args.reset:
        try:
            deleted = reset(registry.root)
        except NotADemoRegistry as exc:
            say(str(exc))
            return 2
        if deleted:
            _tell(f"reset: deleted {', '.join(deleted)} in {registry.root}")
    _tell(f"registry in {registry.root}")
    if demo.seed(registry):
        _tell(f"seeded {demo.DEMO_MODEL}")
    from mlflow import MlflowClient

    env = serve_env(args, dict(os.environ))
    env["STAGESERVE_REGISTRY_URI"] = registry.tracking_uri
    env["STAGESERVE_MODELS"] = demo.DEMO_MODEL
    env.setdefault("STAGESERVE_TARGETS", ",".join(demo.DEMO_TARGETS))
    state = demo.read_state(MlflowClient(registry.tracking_uri, registry.tracking_uri))
    try:
        hint = hint_lines(state, env["STAGESERVE_TARGETS"].split(","), _reach(args, registry))
    except InvalidTarget as exc:
        say(f"STAGESERVE_TARGETS: {exc}")
        return 2
    print("\n".join(hint), file=sys.stderr, flush=True)
    if args.seed_only:
        return 0
    return run_gateway(env, args.host, args.port)


def _tell(message: str) -> None:
    print(f"stageserve demo: {message}", file=sys.stderr, flush=True)


def _reach(args: argparse.Namespace, registry: Any) -> Reach:
    """Commands the user can paste: this interpreter, and the stageserve beside it."""
    script = Path(sys.executable).parent / "stageserve"
    python = shlex.quote(sys.executable)
    command = shlex.quote(str(script)) if script.exists() else f"{python} -m service.cli.main"
    base = f"http://{args.host}:{args.port}"
    return Reach(base, registry.tracking_uri, sys.executable, command)
