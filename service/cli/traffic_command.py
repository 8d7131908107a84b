"""``stageserve traffic show|set|clear``: read and write a model's traffic policy tag in
the registry directly, so it works with no gateway running. Running gateways apply
the change at their next poll."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from registry_watcher.targets import TargetKind
from registry_watcher.traffic_policy import (
    POLICY_TAG,
    PolicyError,
    TrafficPolicy,
    parse_policy,
    policy_from_dict,
)
from service.cli.common import NO_REGISTRY, registry_actions, say
from service.cli.flags import gateway_url, timeout_seconds
from service.cli.status_command import URL_ENV, NoState, base_url


def add_traffic_parser(sub: Any) -> None:
    action = registry_actions(sub, "traffic", "show, set or clear a model's traffic policy")
    show = action("show", help="print the policy")
    show.add_argument("name")
    set_ = action("set", help="write a policy, e.g. Production=90 Staging=10")
    set_.add_argument("name")
    set_.add_argument("weights", nargs="+", metavar="TARGET=WEIGHT")
    set_.add_argument("--shadow", metavar="TARGET:PERCENT", help="mirror a share, e.g. Staging:25")
    set_.add_argument("--sticky", action="store_true", help="route by the X-Routing-Key header")
    clear = action("clear", help="remove the policy (all traffic to the first target)")
    clear.add_argument("name")
    for written in (set_, clear):
        add_wait_flags(written)


def add_wait_flags(parser: Any) -> None:
    parser.add_argument(
        "--wait",
        action="store_true",
        help="then wait until a running gateway applies it (exit 1 if not within --wait-timeout)",
    )
    parser.add_argument(
        "--url",
        type=gateway_url,
        default=None,
        help=f"the gateway to wait for (default: ${URL_ENV}, else http://127.0.0.1:3000)",
    )
    parser.add_argument(
        "--wait-timeout",
        type=timeout_seconds,
        default=60.0,
        metavar="SECONDS",
        help="how long --wait waits (60)",
    )


def policy_from_args(weights: list[str], shadow: str | None, sticky: bool) -> TrafficPolicy:
    """Build and validate a policy from ``TARGET=WEIGHT`` words (same rules as the API)."""
    document: dict[str, Any] = {"weights": {}, "sticky": sticky}
    for word in weights:
        target, sep, value = word.rpartition("=")
        if not sep or not target:
            raise PolicyError(f"{word!r}: write TARGET=WEIGHT, e.g. Production=90")
        if target in document["weights"]:
            raise PolicyError(f"weights: {target} is given twice")
        document["weights"][target] = _number(value, f"weights.{target}")
    if shadow:
        target, sep, value = shadow.rpartition(":")
        if not sep or not target:
            raise PolicyError(f"--shadow {shadow!r}: write TARGET:PERCENT, e.g. Staging:25")
        document["shadow"] = {"target": target, "percent": _number(value, "shadow.percent")}
    return policy_from_dict(document)


def _number(text: str, field: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise PolicyError(f"{field}: {text!r} is not a number") from None
    return int(value) if value.is_integer() else value


def registered_model(client: Any, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        raise PolicyError(f"model {name!r}: {exc.message}") from None


def check_against_registry(client: Any, model: Any, policy: TrafficPolicy) -> None:
    """The aliases and versions a policy names must exist on the model."""
    from mlflow.exceptions import MlflowException

    aliases = model.aliases or {}
    targets = list(policy.targets()) + ([policy.shadow.target] if policy.shadow else [])
    for target in targets:
        if target.kind is TargetKind.ALIAS and target.value not in aliases:
            known = ", ".join(f"@{a}" for a in sorted(aliases)) or "none"
            raise PolicyError(
                f"{target.text}: model {model.name!r} has no such alias (aliases: {known})"
            )
        if target.kind is TargetKind.VERSION:
            try:
                client.get_model_version(model.name, target.value)
            except MlflowException:
                raise PolicyError(
                    f"{target.text}: model {model.name!r} has no version {target.value}"
                ) from None


def run_traffic(args: argparse.Namespace, registry_uri: str | None) -> int:
    from mlflow.exceptions import MlflowException

    if not registry_uri:
        say(NO_REGISTRY)
        return 2
    try:
        return _run(args, registry_uri)
    except PolicyError as exc:
        say(f"invalid traffic policy: {exc}")
        return 2
    except MlflowException as exc:  # its texts quote the registry URL: say() redacts
        say(f"the registry refused: {exc.message}")
        return 1
    except Exception as exc:  # unreachable registry, bad URI: one line, not a traceback
        say(f"could not use the registry: {type(exc).__name__}: {exc}")
        return 1


def _run(args: argparse.Namespace, registry_uri: str) -> int:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=registry_uri, registry_uri=registry_uri)
    model = registered_model(client, args.name)
    tags = dict(model.tags or {})
    if args.action == "set":
        policy = policy_from_args(args.weights, args.shadow, args.sticky)
        check_against_registry(client, model, policy)
        client.set_registered_model_tag(args.name, POLICY_TAG, policy.to_json())
        print(json.dumps(policy.to_dict(), indent=2))
        say(f"traffic policy of {args.name} written; gateways apply it at their next poll")
        return _wait(args, policy)
    if args.action == "clear":
        if POLICY_TAG in tags:
            client.delete_registered_model_tag(args.name, POLICY_TAG)
        say(f"traffic policy of {args.name} cleared: all traffic to the first target")
        return _wait(args, None)
    return _show(tags.get(POLICY_TAG))


def _wait(args: argparse.Namespace, policy: TrafficPolicy | None) -> int:
    """With --wait: 0 once the gateway applied the change, 1 when it did not in time."""
    if not args.wait:
        return 0
    from service.cli.policy_wait import wait_applied

    try:
        url = base_url(args.url, os.environ)
        seconds = wait_applied(url, args.name, policy, args.wait_timeout)
    except NoState as exc:
        say(str(exc))
        return 1
    say(f"the gateway at {url} applied it after {seconds:.1f} s")
    return 0


def _show(value: str | None) -> int:
    if value is None:
        print(json.dumps({"policy": None, "note": "no policy: all traffic to the first target"}))
        return 0
    try:
        print(json.dumps({"policy": parse_policy(value).to_dict()}, indent=2))
    except PolicyError as exc:
        print(json.dumps({"policy": None, "invalid_tag": value, "error": str(exc)}, indent=2))
        return 1
    return 0
