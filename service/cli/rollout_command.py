"""``stageserve rollout start|status|abort|approve MODEL``: a progressive rollout from the
command line.

The writes go through a gateway's admin API (``--url``, else $STAGESERVE_URL, else
http://127.0.0.1:3000) with its admin token (``--admin-token-file``, else
$STAGESERVE_ADMIN_TOKEN or $STAGESERVE_ADMIN_TOKEN_FILE), not straight to the registry:
so the gateway decides who may start, approve or abort (an approval without the token
is refused there, whatever client sends it), and one set of rules checks a plan, whoever
sends it. The flags build the start body; a flag left out leaves the gateway's default.
``status`` asks the gateway too, or with ``--registry-uri`` reads the registry's tag
itself (no gateway needed: a fleet whose controller runs on its own).

Exit code: 0 done (or shown); 1 refused by the gateway (the one line says why: a live
rollout, not awaiting approval, no token, no rollout...) or the registry; 2 a wrong
flag or plan, or no gateway answering.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from registry_watcher.redact import redact_url
from service.cli.common import say
from service.cli.flags import gateway_url, number_flag, secret_file, target_text, timeout_seconds
from service.cli.rollout_table import render
from service.cli.status_command import URL_ENV, NoState, ask_gateway, base_url
from service.config import ConfigError, load_secret_file, secret

DONE, REFUSED, INVALID = 0, 1, 2
TOKEN_ENV = "STAGESERVE_ADMIN_TOKEN"
TOKEN_HINT = f"Pass the gateway's admin token: --admin-token-file FILE, or ${TOKEN_ENV}(_FILE)."

percent_flag = number_flag(
    float, lambda p: 0 < p <= 100, "{text} is not a number",
    "{text}: give a percent above 0, at most 100",
)  # fmt: skip
seconds_flag = number_flag(
    float, lambda s: 0 <= s < float("inf"), "{text} is not a number of seconds",
    "{text}: give a finite number of seconds, 0 or more",
)  # fmt: skip
count_flag = number_flag(
    int, lambda n: n >= 1, "{text} is not a whole number", "{text}: at least 1"
)
fraction_flag = number_flag(
    float, lambda x: 0 <= x <= 1, "{text} is not a number", "{text}: give a number from 0 to 1"
)  # fmt: skip
ratio_flag = number_flag(
    float, lambda x: 1 <= x < float("inf"), "{text} is not a number",
    "{text}: give a ratio, 1 or more",
)  # fmt: skip


def steps_flag(text: str) -> list[int | float]:
    """``5,25,50,100``: the candidate's percent at each step."""
    steps: list[int | float] = []
    for word in text.split(","):
        value = percent_flag(word.strip())
        steps.append(int(value) if value.is_integer() else value)
    return steps


def add_rollout_parser(sub: Any) -> None:
    rollout = sub.add_parser(
        "rollout",
        help="progressive rollouts: start, status, abort, approve",
        description="Exit code: 0 done, 1 refused (the line says why), 2 a wrong flag or "
        "no gateway answering.",
    )
    actions = rollout.add_subparsers(dest="action", required=True)
    start = actions.add_parser(
        "start", help="roll the candidate out step by step against the control"
    )
    status = actions.add_parser("status", help="where a model's rollout stands, and its history")
    abort = actions.add_parser("abort", help="stop a live rollout: all traffic to the control")
    approve = actions.add_parser("approve", help="approve the promotion of a waiting rollout")
    for action in (start, status, abort, approve):
        action.add_argument("name", help="the registered model")
        _gateway_flags(action)
    start.add_argument(
        "--candidate", required=True, type=target_text, help="what is rolled out: Staging, @alias"
    )
    start.add_argument("--control", type=target_text, help="what it replaces (default Production)")
    start.add_argument(
        "--steps", type=steps_flag, metavar="P,P,...", help="percent per step (5,25,50,100)"
    )
    start.add_argument(
        "--min-step-seconds", type=seconds_flag, metavar="S", help="shortest step (60)"
    )
    start.add_argument(
        "--min-step-requests", type=count_flag, metavar="N", help="requests per side per step (100)"
    )
    start.add_argument(
        "--max-error-rate-increase",
        type=fraction_flag,
        metavar="X",
        help="largest rise of the error rate, absolute (0.01)",
    )
    start.add_argument(
        "--max-p99-ratio", type=ratio_flag, metavar="R", help="largest p99 ratio (1.5)"
    )
    start.add_argument(
        "--no-reward-gate",
        action="store_true",
        help="do not fail on a significantly worse reward",
    )
    start.add_argument(
        "--shadow", type=percent_flag, metavar="PERCENT", help="mirror this share first"
    )
    start.add_argument(
        "--min-agreement", type=fraction_flag, metavar="X", help="with --shadow: agreement (0.95)"
    )
    start.add_argument(
        "--require-approval", action="store_true", help="wait for approve before promoting"
    )
    start.add_argument("--sticky", action="store_true", help="keep routing keys on their target")
    start.add_argument("--by", help="who starts it (default: your user name)")
    status.add_argument(
        "--registry-uri",
        default=None,
        help="read the registry's tag instead of asking a gateway",
    )
    abort.add_argument("--why", default="", help="why, recorded in the history")
    abort.add_argument("--by", help="who aborts (default: your user name)")
    approve.add_argument("--by", help="who approves (default: your user name)")


def _gateway_flags(parser: Any) -> None:
    parser.add_argument(
        "--url",
        type=gateway_url,
        default=None,
        help=f"the gateway (default: ${URL_ENV}, else http://127.0.0.1:3000)",
    )
    parser.add_argument(
        "--admin-token-file",
        type=secret_file,
        default=None,
        metavar="FILE",
        help=f"file holding the gateway's admin token (default: ${TOKEN_ENV})",
    )
    parser.add_argument("--json", action="store_true", help="print the rollout as JSON")
    parser.add_argument(
        "--timeout", type=timeout_seconds, default=30.0, help="seconds to wait per request (30)"
    )


def start_body(args: argparse.Namespace, by: str) -> dict[str, Any]:
    """The start request from the flags; a flag not given leaves the gateway's default."""
    if args.min_agreement is not None and args.shadow is None:
        raise ValueError("--min-agreement needs --shadow PERCENT")
    body: dict[str, Any] = {"candidate": args.candidate, "by": by}
    for key in ("control", "steps", "min_step_seconds", "min_step_requests"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    gates: dict[str, Any] = {}
    for key in ("max_error_rate_increase", "max_p99_ratio"):
        if getattr(args, key) is not None:
            gates[key] = getattr(args, key)
    if args.no_reward_gate:
        gates["reward_not_worse"] = False
    if gates:
        body["gates"] = gates
    if args.shadow is not None:
        body["shadow"] = {"percent": args.shadow}
        if args.min_agreement is not None:
            body["shadow"]["min_agreement"] = args.min_agreement
    for key in ("require_approval", "sticky"):
        if getattr(args, key):
            body[key] = True
    return body


def admin_token(flag: str | None, env: Mapping[str, str]) -> str | None:
    """--admin-token-file's secret, else $STAGESERVE_ADMIN_TOKEN (or its _FILE)."""
    if flag:
        return load_secret_file(flag)
    return secret(env, TOKEN_ENV)


class Refused(Exception):
    """The gateway or the registry said no; one line, meant for the user."""


def run_rollout(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> int:
    try:
        if args.action == "status" and args.registry_uri:
            return _show(_from_registry(args), registry_source(args.registry_uri), args)
        url = base_url(args.url, env)
        path = f"/admin/models/{quote(args.name, safe='/')}/rollout"
        if args.action == "status":
            return _answered(args, url, ask_gateway(url, path, args.timeout))
        request = _write_request(args, env)
        suffix = "" if args.action == "start" else f"/{args.action}"
        answer = ask_gateway(url, path + suffix, args.timeout, "POST", **request)
        return _answered(args, url, answer)
    except Refused as exc:
        say(str(exc))
        return REFUSED
    except (NoState, ValueError, ConfigError) as exc:
        say(str(exc))
        return INVALID


def _write_request(args: argparse.Namespace, env: Mapping[str, str]) -> dict[str, Any]:
    """httpx's ``json`` and ``headers`` for a write (no token: sent without one, and the
    gateway says whether that is allowed)."""
    from service.rollouts.rollout_plan import default_approver

    by = args.by or default_approver()
    if args.action == "start":
        body = start_body(args, by)
    elif args.action == "abort":
        body = {"by": by, **({"why": args.why} if args.why else {})}
    else:
        body = {"by": by}
    token = admin_token(args.admin_token_file, env)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return {"json": body, "headers": headers}


def _answered(args: argparse.Namespace, url: str, answer: Any) -> int:
    try:
        body = answer.json()
    except ValueError:
        body = None
    if answer.status_code in (200, 201) and isinstance(body, dict):
        if args.action != "status":
            say(done_line(args.action, body))
        return _show(body, f"gateway {url}", args)
    message = body.get("message") if isinstance(body, dict) else None
    if not message:
        raise NoState(f"{url} answered HTTP {answer.status_code}: is it a stageserve gateway?")
    if answer.status_code == 401:
        message += f" {TOKEN_HINT}"
    say(f"{args.action} refused (HTTP {answer.status_code}): {message}")
    return INVALID if answer.status_code == 400 else REFUSED


def done_line(action: str, view: Mapping[str, Any]) -> str:
    """What a write did, in one line, from the rollout answered."""
    plan, state = view.get("plan") or {}, view.get("state") or {}
    if action == "start":
        return (
            f"rollout {plan.get('id')} of {plan.get('model')} started: {plan.get('candidate')} "
            f"v{plan.get('candidate_version')} against {plan.get('control')}; the controller "
            "moves it on"
        )
    if action == "approve":
        approval = state.get("approval") or {}
        return f"approved by {approval.get('by')}: the controller promotes at its next tick"
    return f"aborted: all traffic back to {plan.get('control')}"


def registry_source(uri: str) -> str:
    """The heading's source for a rollout read from the registry: its URI with no
    credential (it is printed to stdout, which scripts and CI logs keep)."""
    return f"registry {redact_url(uri)}"


def _show(view: Mapping[str, Any], source: str, args: argparse.Namespace) -> int:
    print(json.dumps(view, indent=2) if args.json else render(view, source, time.time()))
    return DONE


def _from_registry(args: argparse.Namespace) -> dict[str, Any]:
    """The rollout read from the registry's tag, as the gateway would answer it."""
    from service.cli.common import registry_uri
    from service.rollouts.rollout_store import RegistryModelTags, RolloutStore
    from service.rollouts.rollout_view import rollout_json
    from service.rollouts.tag_fields import RolloutError

    uri = registry_uri(args.registry_uri)
    try:
        rollout = RolloutStore(RegistryModelTags(uri, args.timeout)).read(args.name)
    except RolloutError as exc:
        raise Refused(f"the rollout tag of {args.name!r} cannot be read: {exc}") from None
    except Exception as exc:  # unreachable registry, no such model: one line
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        raise Refused(f"could not read the registry: {message}") from None
    if rollout is None:
        raise Refused(f"model {args.name!r} has no rollout")
    return rollout_json(rollout)
