"""``stageserve status``: ask a running gateway what it serves (``GET /admin/models``) and
show it as a table (service/cli/status_table.py), or as the gateway's own JSON for
scripts (``--json``). The exit code says the state, for scripts and probes alike:
0 ready, 1 answering but not ready, 2 no gateway there (or no usable answer)."""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Mapping
from typing import Any

from service.cli.common import say
from service.cli.flags import gateway_url, timeout_seconds
from service.cli.status_table import NotAState, check_state, render

DEFAULT_URL = "http://127.0.0.1:3000"
URL_ENV = "STAGESERVE_URL"
STATE_PATH = "/admin/models"

READY, NOT_READY, NO_GATEWAY = 0, 1, 2


class NoState(Exception):
    """No usable state from the gateway; one line, meant for the user."""


def add_status_parser(sub: Any) -> None:
    status = sub.add_parser(
        "status",
        help="what a running gateway serves now, per model and target",
        description="Exit code: 0 ready, 1 answering but not ready, 2 no gateway answering.",
    )
    status.add_argument(
        "--url",
        type=gateway_url,
        default=None,
        help=f"the gateway (default: ${URL_ENV}, else {DEFAULT_URL})",
    )
    status.add_argument(
        "--json", action="store_true", help=f"print the gateway's {STATE_PATH} document"
    )
    status.add_argument(
        "--timeout", type=timeout_seconds, default=5.0, help="seconds to wait for it (5)"
    )


def base_url(flag: str | None, env: Mapping[str, str]) -> str:
    """The gateway to ask: ``--url``, else $STAGESERVE_URL, else the local default."""
    if flag:
        return flag
    text = env.get(URL_ENV, "").strip()
    if not text:
        return DEFAULT_URL
    try:
        return gateway_url(text)
    except argparse.ArgumentTypeError as exc:
        raise NoState(f"{URL_ENV}: {exc}") from None


def ask_gateway(url: str, path: str, timeout: float, method: str = "GET", **request: Any) -> Any:
    """The gateway's answer (an ``httpx.Response``) to ``method path`` (``request``:
    httpx's ``json``, ``headers``...), or NoState when none came."""
    import httpx  # only when asked: the other subcommands do not need it

    try:
        return httpx.request(method, url + path, timeout=timeout, **request)
    except httpx.TimeoutException:
        raise NoState(f"no answer from {url} within {timeout:g} s") from None
    except httpx.ConnectError as exc:
        raise NoState(f"no gateway answers at {url} ({exc})") from None
    except httpx.HTTPError as exc:
        raise NoState(f"could not ask {url}: {type(exc).__name__}: {exc}") from None


def fetch_state(url: str, timeout: float) -> dict[str, Any]:
    """The gateway's checked state document, or NoState saying why there is none."""
    answer = ask_gateway(url, STATE_PATH, timeout)
    if answer.status_code != 200:
        raise NoState(
            f"{url}{STATE_PATH} answered HTTP {answer.status_code}: is it a stageserve gateway?"
        )
    try:
        return check_state(answer.json())
    except (ValueError, NotAState) as exc:  # not JSON, or not a gateway's state
        raise NoState(f"{url}{STATE_PATH} is not a stageserve gateway's state: {exc}") from None


def exit_code(state: Mapping[str, Any]) -> int:
    """0 when the gateway is ready (what its /ping says), else 1."""
    return READY if state["ready"] is True else NOT_READY


def run_status(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> int:
    try:
        url = base_url(args.url, env)
        state = fetch_state(url, args.timeout)
    except NoState as exc:
        say(str(exc))
        return NO_GATEWAY
    if args.json:
        print(json.dumps(state, indent=2))
    else:
        print(render(state, url, time.time()))
    return exit_code(state)
