"""``stageserve controller --prometheus URL``: the rollout controller of a fleet, as its
own process (one replica), judging each step from the fleet-wide figures Prometheus has
scraped from every gateway (service/rollouts/results_source.py ``FleetResults``).

It ticks every ``--interval`` seconds over the ``--model`` names given, or else every
registered model with a ``stageserve.rollout`` or ``stageserve.bandit`` tag; serves its
own metrics on ``--metrics-port`` (127.0.0.1 unless ``--metrics-host``) for Prometheus
to scrape; and stops cleanly on SIGTERM or SIGINT, giving up its leases so that a
successor decides at once. Run the gateways with ``--controller off``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType

from registry_watcher.redact import redact_url
from service.cli.common import registry_option, say
from service.cli.flags import (
    add_model_flag,
    gateway_url,
    non_empty,
    port_number,
    timeout_seconds,
)
from service.config import SETTINGS
from service.experiments.prometheus_reader import PrometheusReader
from service.ops.metrics import get_rollout_metrics
from service.rollouts.bandit_actor import BanditActor
from service.rollouts.bandit_config import BANDIT_TAG
from service.rollouts.bandit_rewards import FleetBanditRewards
from service.rollouts.controller import Controller
from service.rollouts.registry_effects import MlflowRolloutRegistry
from service.rollouts.results_source import FleetResults
from service.rollouts.rollout_tag import ROLLOUT_TAG

log = logging.getLogger("stageserve.controller")

DEFAULT_INTERVAL_S = float(
    next(s.default for s in SETTINGS if s.env == "STAGESERVE_CONTROLLER_INTERVAL") or 5
)
PROMETHEUS_TIMEOUT_S = 10.0


def add_controller_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "controller",
        parents=[registry_option()],
        help="run the rollout controller of a fleet (judging from Prometheus)",
    )
    parser.add_argument(
        "--prometheus",
        type=gateway_url,
        metavar="URL",
        required=True,
        help="the Prometheus that scrapes every gateway",
    )
    add_model_flag(
        parser, "a model to control (repeatable; default: every model with a rollout or bandit tag)"
    )
    parser.add_argument(
        "--interval",
        type=timeout_seconds,
        default=DEFAULT_INTERVAL_S,
        metavar="S",
        help=f"seconds between ticks (default {DEFAULT_INTERVAL_S:g})",
    )
    parser.add_argument(
        "--metrics-port",
        type=port_number,
        default=None,
        metavar="P",
        help="serve the controller's metrics on this port (default: none)",
    )
    parser.add_argument(
        "--metrics-host",
        type=non_empty,
        default="127.0.0.1",
        help="address of the metrics port (default 127.0.0.1)",
    )


def build_controller(args: argparse.Namespace, registry_uri: str | None) -> Controller:
    registry = MlflowRolloutRegistry(registry_uri, min(30.0, 2 * args.interval))
    reader = PrometheusReader(args.prometheus, PROMETHEUS_TIMEOUT_S)
    names: list[str] = list(dict.fromkeys(args.model))

    def models() -> list[str]:
        return names or registry.models_tagged((ROLLOUT_TAG, BANDIT_TAG))

    metrics = get_rollout_metrics()
    bandit = BanditActor(
        registry, FleetBanditRewards(reader.samples), weights=metrics.bandit_weight
    )
    return Controller(
        registry,
        FleetResults(reader),
        models,
        interval_s=args.interval,
        metrics=metrics,
        bandit=bandit,
    )


def run_controller(args: argparse.Namespace, registry_uri: str | None) -> int:
    """Tick until SIGTERM or SIGINT; 0 on a clean stop, 2 when the metrics port is taken."""
    controller = build_controller(args, registry_uri)
    if args.metrics_port is not None:
        from prometheus_client import start_http_server

        try:
            start_http_server(args.metrics_port, addr=args.metrics_host)
        except OSError as exc:
            say(f"--metrics-port {args.metrics_port}: cannot listen on {args.metrics_host} ({exc})")
            return 2
    stop = threading.Event()

    def stopping(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    where = ", ".join(args.model) if args.model else "models with a rollout or bandit tag"
    log.info(
        "controller %s: %s, every %g s, judging from %s",
        controller.lease.holder,
        where,
        args.interval,
        redact_url(args.prometheus),  # a URL may carry a user and password
    )
    while not stop.is_set():
        controller.run_once()
        stop.wait(args.interval)
    controller.release()
    log.info("controller stopped")
    return 0
