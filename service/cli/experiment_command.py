"""``stageserve experiment show NAME``: a model's A/B results, from one gateway
(``GET /admin/models/{name}/experiment``, ``--url``) or from the whole fleet through
Prometheus's HTTP API (``--prometheus URL``, service/experiments/prometheus_reader.py),
as a table (service/cli/experiment_table.py) or as JSON (``--json``).

``--since`` (an ISO time, or a duration ago such as ``2h`` or ``1h30m``) needs
Prometheus: one gateway keeps no history. Exit code: 0 results shown, 2 none (no
gateway or Prometheus answering, an unknown model, no data), with one line saying why.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from service.cli.common import say
from service.cli.experiment_table import render
from service.cli.flags import gateway_url, timeout_seconds
from service.cli.status_command import URL_ENV, NoState, ask_gateway, base_url

SHOWN, NO_RESULTS = 0, 2
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
NEEDS_PROMETHEUS = (
    "--since needs --prometheus: one gateway keeps no history, its window starts when "
    "the traffic policy last changed"
)


@dataclass(frozen=True)
class Since:
    """A window's start: ``ago`` seconds before now, or the time ``at``."""

    ago: float | None = None
    at: float | None = None

    def start(self, now: float) -> float:
        return now - self.ago if self.ago is not None else float(self.at or 0.0)


def since_flag(text: str) -> Since:
    """``2h``, ``1h30m``, ``90s``, ``7d`` ago, or an ISO time (UTC unless it says)."""
    word = text.strip()
    if word and _DURATION.sub("", word) == "":
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _DURATION.findall(word))
        if seconds > 0:
            return Since(ago=seconds)
    try:
        moment = datetime.fromisoformat(word)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a duration ago (2h, 1h30m, 90s, 7d) or an ISO time "
            "(2026-01-31T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return Since(at=moment.timestamp())


def add_experiment_parser(sub: Any) -> None:
    experiment = sub.add_parser("experiment", help="a model's A/B test results")
    actions = experiment.add_subparsers(dest="action", required=True)
    show = actions.add_parser(
        "show",
        help="per target and version: requests, errors, latency, rewards, vs the control",
        description="Exit code: 0 results shown, 2 no results (one line says why).",
    )
    show.add_argument("name", help="the registered model")
    where = show.add_mutually_exclusive_group()
    where.add_argument(
        "--url",
        type=gateway_url,
        default=None,
        help=f"one gateway (default: ${URL_ENV}, else http://127.0.0.1:3000)",
    )
    where.add_argument(
        "--prometheus",
        type=gateway_url,
        metavar="URL",
        default=None,
        help="the whole fleet, through the Prometheus that scrapes it",
    )
    show.add_argument(
        "--since",
        type=since_flag,
        default=None,
        metavar="WHEN",
        help="the window's start, with --prometheus: an ISO time or a duration ago "
        "(default: when the traffic policy last changed)",
    )
    show.add_argument("--json", action="store_true", help="print the results as JSON")
    show.add_argument(
        "--timeout", type=timeout_seconds, default=10.0, help="seconds to wait per request (10)"
    )


def fetch_gateway(url: str, model: str, timeout: float) -> dict[str, Any]:
    """One gateway's answer, or NoState saying why there is none."""
    path = f"/admin/models/{quote(model, safe='/')}/experiment"
    answer = ask_gateway(url, path, timeout)
    try:
        body = answer.json()
    except ValueError:
        body = None
    if answer.status_code != 200 or not isinstance(body, dict):
        message = body.get("message") if isinstance(body, dict) else None
        raise NoState(
            f"{url}{path} answered HTTP {answer.status_code}"
            + (f": {message}" if message else ": is it a stageserve gateway?")
        )
    return body


def read_results(
    args: argparse.Namespace, env: Mapping[str, str], now: float
) -> tuple[dict[str, Any], str]:
    """(the results, where they come from), or NoState."""
    if args.prometheus:
        from service.experiments.prometheus_reader import FleetUnreadable, PrometheusReader

        since = args.since.start(now) if args.since is not None else None
        try:
            reader = PrometheusReader(args.prometheus, args.timeout)
            return reader.experiment(args.name, since, now), f"fleet, Prometheus {args.prometheus}"
        except FleetUnreadable as exc:
            raise NoState(str(exc)) from None
    if args.since is not None:
        raise NoState(NEEDS_PROMETHEUS)
    url = base_url(args.url, env)
    return fetch_gateway(url, args.name, args.timeout), f"gateway {url}"


def run_experiment(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> int:
    try:
        results, source = read_results(args, env, time.time())
    except NoState as exc:
        say(str(exc))
        return NO_RESULTS
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(render(results, source))
    return SHOWN
