"""The ``stageserve`` command line: every subcommand and its options, parsed only
(what each subcommand does lives in its own module)."""

from __future__ import annotations

import argparse

from service.cli.bandit_command import add_bandit_parser
from service.cli.controller_command import add_controller_parser
from service.cli.demo_command import add_demo_parser
from service.cli.experiment_command import add_experiment_parser
from service.cli.rollout_command import add_rollout_parser
from service.cli.serve_options import add_serve_options
from service.cli.status_command import add_status_parser
from service.cli.traffic_command import add_traffic_parser
from service.cli.version import VersionAction
from service.cli.webhooks_command import add_webhooks_parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stageserve",
        description="Serve MLflow models by registry stage or alias, hot-swapped.",
    )
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    add_serve_options(serve)
    add_demo_parser(sub)
    add_traffic_parser(sub)
    add_webhooks_parser(sub)
    add_status_parser(sub)
    add_experiment_parser(sub)
    add_bandit_parser(sub)
    add_controller_parser(sub)
    add_rollout_parser(sub)
    return parser
