"""``stageserve bandit start|status|stop MODEL``: the ``stageserve.bandit`` tag read and
written in the registry directly (as ``stageserve traffic`` does the policy), so it
works with no gateway running. The controller (embedded in a gateway, or
``stageserve controller``) reads the tag and rewrites the traffic policy every interval.

``start`` checks that every arm exists (a stage holding a version, an alias, a version)
and that no other bandit or rollout is steering the model's traffic, then writes an
even starting policy and the tag. ``stop`` removes the tag and leaves the policy in
force (``--keep``, the default) or sends everything to ``--winner``. Exit codes: 0 done,
1 the registry failed or a tag cannot be read, 2 refused (with the flag named).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from typing import Any

from registry_watcher.targets import TargetKind, parse_target
from registry_watcher.traffic_policy import (
    POLICY_TAG,
    PolicyError,
    TrafficPolicy,
    parse_policy,
    policy_from_dict,
)
from service.cli.common import NO_REGISTRY, registry_actions, say
from service.cli.flags import model_name, number_flag, target_text
from service.cli.traffic_command import check_against_registry, registered_model
from service.rollouts.bandit_config import (
    BANDIT_TAG,
    DEFAULT_FLOOR,
    DEFAULT_INTERVAL_S,
    DEFAULT_MIN_CHANGE,
    DEFAULT_MIN_REWARDS,
    BanditPlan,
    BanditTagError,
    decode_bandit,
    encode_bandit,
    new_bandit,
)
from service.rollouts.tag_fields import RolloutError

DONE, FAILED, REFUSED = 0, 1, 2
FLAGS = {
    "floor": "--floor",
    "interval_s": "--interval",
    "min_rewards": "--min-rewards",
    "min_change": "--min-change",
}

share = number_flag(float, lambda x: 0 <= x < 1, "{text} is not a number", "{text}: give 0 to <1")
seconds = number_flag(float, lambda x: x > 0, "{text} is not a number", "{text}: give seconds > 0")
count = number_flag(int, lambda x: x >= 0, "{text} is not a whole number", "{text}: give >= 0")


class Refused(Exception):
    """What the user asked cannot be done; one line."""


def add_bandit_parser(sub: Any) -> None:
    action = registry_actions(sub, "bandit", "weigh a model's traffic by Thompson sampling")
    start = action("start", help="start a bandit over two or more targets")
    start.add_argument("name", type=model_name)
    start.add_argument("arms", nargs="+", type=target_text, metavar="ARM")
    start.add_argument(
        "--floor", type=share, default=DEFAULT_FLOOR, help="each arm's least share (0.05)"
    )
    start.add_argument(
        "--interval", type=seconds, default=DEFAULT_INTERVAL_S, metavar="SECONDS",
        help="seconds between reweighings (30)",
    )  # fmt: skip
    start.add_argument(
        "--min-rewards", type=count, default=DEFAULT_MIN_REWARDS, metavar="N",
        help="an even split until every arm has N rewards (100)",
    )  # fmt: skip
    start.add_argument(
        "--min-change", type=share, default=DEFAULT_MIN_CHANGE, metavar="SHARE",
        help="rewrite the policy only when a share moves this much (0.01)",
    )  # fmt: skip
    start.add_argument(
        "--sticky", action=argparse.BooleanOptionalAction, default=True,
        help="route by the X-Routing-Key header (default: sticky)",
    )  # fmt: skip
    status = action("status", help="the bandit and the weights now")
    status.add_argument("name", type=model_name)
    status.add_argument("--json", action="store_true", help="print JSON")
    stop = action("stop", help="stop the bandit")
    stop.add_argument("name", type=model_name)
    ending = stop.add_mutually_exclusive_group()
    ending.add_argument(
        "--keep", action="store_true", help="keep the weights in force (the default)"
    )
    ending.add_argument(
        "--winner", type=target_text, metavar="TARGET", help="send all traffic to this arm"
    )


def run_bandit(args: argparse.Namespace, registry_uri: str | None) -> int:
    from mlflow.exceptions import MlflowException

    if not registry_uri:
        say(NO_REGISTRY)
        return REFUSED
    try:
        return _run(args, registry_uri)
    except (Refused, PolicyError) as exc:
        say(str(exc))
        return REFUSED
    except BanditTagError as exc:
        say(f"{args.name}'s {BANDIT_TAG} tag cannot be read: {exc}")
        return FAILED
    except MlflowException as exc:  # its texts quote the registry URL: say() redacts
        say(f"the registry refused: {exc.message}")
        return FAILED
    except Exception as exc:  # unreachable registry, bad URI: one line, not a traceback
        say(f"could not use the registry: {type(exc).__name__}: {exc}")
        return FAILED


def _run(args: argparse.Namespace, registry_uri: str) -> int:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=registry_uri, registry_uri=registry_uri)
    model = registered_model(client, args.name)
    tags = dict(model.tags or {})
    if args.action == "start":
        return _start(client, model, tags, args)
    if args.action == "stop":
        return _stop(client, tags, args)
    return _status(args.name, tags, args.json)


def bandit_from_flags(args: argparse.Namespace, now: float) -> BanditPlan:
    """The bandit the flags ask for; a refusal names the flag."""
    try:
        return new_bandit(
            args.arms,
            now,
            floor=args.floor,
            interval_s=args.interval,
            min_rewards=args.min_rewards,
            min_change=args.min_change,
            sticky=args.sticky,
        )
    except BanditTagError as exc:
        field, _, problem = str(exc).partition(": ")
        raise Refused(f"{FLAGS.get(field, 'ARM')}: {problem}") from None


def _start(client: Any, model: Any, tags: dict[str, str], args: argparse.Namespace) -> int:
    from service.rollouts.bandit_tick import bandit_step

    plan = bandit_from_flags(args, time.time())
    _check_free(args.name, tags)
    even = bandit_step(plan, {}, None, plan.started_at).policy
    assert even is not None  # no policy in force: always written
    check_against_registry(client, model, even)
    _check_stages(model, plan)
    client.set_registered_model_tag(args.name, POLICY_TAG, even.to_json())
    client.set_registered_model_tag(args.name, BANDIT_TAG, encode_bandit(plan))
    print(json.dumps({"bandit": plan.to_dict(), "policy": even.to_dict()}, indent=2))
    say(
        f"bandit on {args.name} started over {', '.join(plan.arms)}: an even split now, "
        f"reweighed every {plan.interval_s:g} s by the controller"
    )
    return DONE


def _check_free(name: str, tags: dict[str, str]) -> None:
    """No bandit already, and no rollout in progress: one writer of the policy."""
    from service.rollouts.rollout_tag import ROLLOUT_TAG, decode_rollout

    if BANDIT_TAG in tags:
        raise Refused(f"a bandit already runs on {name}: `stageserve bandit stop {name}` first")
    text = tags.get(ROLLOUT_TAG)
    try:
        rollout = None if text is None else decode_rollout(text)
    except RolloutError:
        rollout = None  # unreadable: no controller acts on it either
    if rollout is not None and not rollout.state.finished:
        raise Refused(
            f"a rollout of {name} is in progress ({rollout.state.phase}): "
            f"`stageserve rollout abort {name}` first"
        )


def _check_stages(model: Any, plan: BanditPlan) -> None:
    """A stage arm must hold a version (aliases and versions: check_against_registry)."""
    staged = {v.current_stage for v in model.latest_versions or ()}
    for arm in plan.arms:
        target = parse_target(arm)
        if target.kind is TargetKind.STAGE and target.value not in staged:
            held = ", ".join(sorted(staged - {"None"})) or "none"
            raise Refused(f"{arm}: model {model.name!r} has no version in it (stages: {held})")


def _stop(client: Any, tags: dict[str, str], args: argparse.Namespace) -> int:
    text = tags.get(BANDIT_TAG)
    if text is None:
        if args.winner:
            raise Refused(f"no bandit on {args.name}: use `stageserve traffic set` instead")
        say(f"no bandit on {args.name}: nothing to stop")
        return DONE
    plan = decode_bandit(text)
    if args.winner and args.winner not in plan.arms:
        raise Refused(f"--winner: {args.winner} is not an arm ({', '.join(plan.arms)})")
    client.delete_registered_model_tag(args.name, BANDIT_TAG)  # first: no tick rewrites
    if args.winner:
        winner = policy_from_dict({"weights": {args.winner: 100}, "sticky": plan.sticky})
        client.set_registered_model_tag(args.name, POLICY_TAG, winner.to_json())
        say(f"bandit on {args.name} stopped: all traffic to {args.winner}")
        return DONE
    in_force = _policy(tags.get(POLICY_TAG))
    kept = _weights_text(in_force) if in_force else "no policy"
    say(f"bandit on {args.name} stopped; the policy in force stays: {kept}")
    return DONE


def _status(name: str, tags: dict[str, str], as_json: bool) -> int:
    text, policy = tags.get(BANDIT_TAG), _policy(tags.get(POLICY_TAG))
    plan = None if text is None else decode_bandit(text)
    if policy is None and POLICY_TAG in tags:
        say(f"{name}'s {POLICY_TAG} tag cannot be read: `stageserve traffic show {name}`")
    if as_json:
        print(
            json.dumps(
                {
                    "model": name,
                    "bandit": plan.to_dict() if plan else None,
                    "policy": policy.to_dict() if policy else None,
                },
                indent=2,
            )
        )
        return DONE
    print(status_text(name, plan, policy, time.time()))
    return DONE


def status_text(
    name: str, plan: BanditPlan | None, policy: TrafficPolicy | None, now: float
) -> str:
    """What ``bandit status`` prints without --json."""
    weights = _weights_text(policy) if policy else "none (all traffic to the first target)"
    if plan is None:
        return f"no bandit on {name}\ntraffic policy: {weights}"
    sticky = "sticky" if plan.sticky else "not sticky"
    started = datetime.fromtimestamp(plan.started_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return "\n".join(
        (
            f"bandit on {name} (id {plan.id}), started {started} "
            f"({_ago(now - plan.started_at)} ago)",
            f"arms: {', '.join(plan.arms)}",
            f"floor {plan.floor * 100:g} %, reweighed every {plan.interval_s:g} s, "
            f"even until every arm has {plan.min_rewards} rewards, rewritten when a share "
            f"moves by {plan.min_change * 100:g} % of traffic, {sticky}",
            f"traffic policy: {weights}",
        )
    )


def _policy(text: str | None) -> TrafficPolicy | None:
    if text is None:
        return None
    try:
        return parse_policy(text)
    except PolicyError:
        return None


def _weights_text(policy: TrafficPolicy) -> str:
    return ", ".join(f"{t.text} {share * 100:.1f} %" for t, share in policy.shares().items())


def _ago(elapsed: float) -> str:
    elapsed = max(elapsed, 0.0)
    if elapsed < 120:
        return f"{elapsed:.0f} s"
    if elapsed < 7200:
        return f"{elapsed / 60:.0f} min"
    return f"{elapsed / 3600:.1f} h"
