"""The ``stageserve`` command: ``serve`` runs the gateway, ``demo`` runs it on a local
registry seeded with a demo model, ``traffic`` reads and writes traffic policies,
``webhooks`` registers the MLflow webhook, ``status`` shows what a running gateway
serves, ``experiment`` shows a model's A/B results, ``bandit`` starts, shows and stops a
model's Thompson-sampling bandit, ``rollout`` starts, shows, approves and aborts
progressive rollouts. This module parses and dispatches only."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from service.cli.bandit_command import run_bandit
from service.cli.common import registry_uri, say
from service.cli.controller_command import run_controller
from service.cli.demo_command import run_demo
from service.cli.experiment_command import run_experiment
from service.cli.parser import build_parser
from service.cli.rollout_command import run_rollout
from service.cli.serve_command import run_gateway
from service.cli.serve_options import serve_env
from service.cli.status_command import run_status
from service.cli.traffic_command import run_traffic
from service.cli.webhooks_command import run_webhooks
from service.config import ConfigError, secret
from service.logs import log_redaction, log_setup


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # a refused flag (2) or --help (0): argparse printed why
        return exc.code if isinstance(exc.code, int) else 2
    if args.command in ("serve", "demo"):  # this process's lines, in the gateway's format
        env = serve_env(args, dict(os.environ))
        log_setup.configure(log_setup.LogOptions.lenient(env))
        if args.command == "serve":
            return run_gateway(env, args.host, args.port)
    if args.command == "status":
        return run_status(args)
    if args.command == "experiment":
        return run_experiment(args)
    log_redaction.protect(os.environ)  # MLflow's own log lines quote registry URLs
    if args.command == "rollout":
        return run_rollout(args)
    if args.command == "traffic":
        return run_traffic(args, registry_uri(args.registry_uri))
    if args.command == "bandit":
        return run_bandit(args, registry_uri(args.registry_uri))
    if args.command == "controller":
        log_setup.configure(log_setup.LogOptions.lenient(dict(os.environ)))
        return run_controller(args, registry_uri(args.registry_uri))
    if args.command == "webhooks":
        try:
            signing = secret(os.environ, "STAGESERVE_WEBHOOK_SECRET")
        except ConfigError as exc:
            say(str(exc))
            return 2
        return run_webhooks(args, registry_uri(args.registry_uri), signing)
    return run_demo(args)


if __name__ == "__main__":
    sys.exit(main())
