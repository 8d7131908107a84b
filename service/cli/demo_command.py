"""``stageserve demo``: seed a local registry with the demo model (service/cli/demo.py),
then serve it like ``stageserve serve`` would."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from service.cli.common import say
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
    add_serve_options(demo, demo=True)


def run_demo(args: argparse.Namespace) -> int:
    from service.cli.demo import DEMO_MODEL, DemoRegistry, seed  # MLflow: only when asked

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
