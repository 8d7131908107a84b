"""A model's bandit as data: the ``stageserve.bandit`` registered-model tag, which says
that the model's traffic policy is the controller's to recompute by Thompson sampling,
over which arms and how, and since when the rewards count::

    {"arms":["Production","Staging"],"floor":0.05,"interval_s":30,"min_rewards":100,
     "min_change":0.01,"sticky":true,"started_at":1764460800.0,"id":"3f2a9c0d1b7e"}

Checked on construction and on decoding alike, every error naming its field (``floor``,
``arms[1]``), so a bandit started from the CLI and one hand-written into the registry
are refused in the same words. Arm texts are kept canonical (``production`` ->
``Production``): they are the keys of the rewards and of the policy's weights.

Defaults are the measured recommendation (/work/wt/notes/readme-h13-bandit.md, 200
seeded runs, B 0.60 vs A 0.50): a 5 % exploration floor, a rewrite only when a share
moves 1 point, and an even split until every arm has 100 rewards, which kept the worse
arm from ever reaching 80 % at the price of ~300 items before the split moves.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from registry_watcher.targets import InvalidTarget, parse_target
from registry_watcher.traffic_policy import MAX_TARGETS
from service.rollouts import tag_fields as f
from service.rollouts.tag_fields import RolloutError

if TYPE_CHECKING:  # numpy and scipy load at the first weighing, not with the CLI's parser
    from service.rollouts.thompson import BanditConfig

BANDIT_TAG = "stageserve.bandit"
DEFAULT_FLOOR = 0.05
DEFAULT_INTERVAL_S = 30.0
DEFAULT_MIN_REWARDS = 100
DEFAULT_MIN_CHANGE = 0.01
_KEYS = ("arms", "floor", "interval_s", "min_rewards", "min_change", "sticky", "started_at", "id")
_REQUIRED = ("arms", "started_at", "id")
_ID_CHARS = 64


class BanditTagError(RolloutError):
    """A bandit that cannot be used; the message names the field."""


@dataclass(frozen=True)
class BanditPlan:
    """What the ``stageserve.bandit`` tag holds: the arms (target texts, in policy order)
    and how their weights are recomputed (see the module's text)."""

    arms: tuple[str, ...]
    started_at: float  # epoch seconds: rewards count from here, across policy rewrites
    id: str  # keys this bandit: a new start is a new experiment (and a new baseline)
    floor: float = DEFAULT_FLOOR
    interval_s: float = DEFAULT_INTERVAL_S
    min_rewards: int = DEFAULT_MIN_REWARDS
    min_change: float = DEFAULT_MIN_CHANGE
    sticky: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "arms", _canonical_arms(self.arms))
        if not (isinstance(self.interval_s, int | float) and self.interval_s > 0):
            raise BanditTagError(f"interval_s: must be > 0 seconds, got {f.shown(self.interval_s)}")
        if not (isinstance(self.started_at, int | float) and self.started_at >= 0):
            raise BanditTagError(
                f"started_at: must be epoch seconds, got {f.shown(self.started_at)}"
            )
        if not (isinstance(self.id, str) and 0 < len(self.id) <= _ID_CHARS):
            raise BanditTagError(f"id: must be 1 to {_ID_CHARS} characters, got {f.shown(self.id)}")
        if not isinstance(self.sticky, bool):
            raise BanditTagError(f"sticky: must be true or false, got {f.shown(self.sticky)}")
        from service.rollouts.thompson import BanditConfigError

        try:
            self.weighting().check_arms(len(self.arms))
        except BanditConfigError as exc:
            raise BanditTagError(_named(str(exc))) from None

    def weighting(self) -> BanditConfig:
        """How thompson.py computes this bandit's weights."""
        from service.rollouts.thompson import BanditConfig

        return BanditConfig(
            floor=self.floor, min_change=self.min_change, min_rewards=self.min_rewards
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "arms": list(self.arms),
            "floor": f.number_out(self.floor),
            "interval_s": f.number_out(self.interval_s),
            "min_rewards": self.min_rewards,
            "min_change": f.number_out(self.min_change),
            "sticky": self.sticky,
            "started_at": f.number_out(self.started_at),
            "id": self.id,
        }


def new_bandit(arms: Sequence[str], now: float, **settings: Any) -> BanditPlan:
    """A bandit starting ``now`` with a fresh id; ``settings`` as BanditPlan's fields."""
    return BanditPlan(arms=tuple(arms), started_at=now, id=uuid.uuid4().hex[:12], **settings)


def encode_bandit(plan: BanditPlan) -> str:
    """The tag's text: compact, stable (equal bandits give equal text), ASCII."""
    return json.dumps(plan.to_dict(), separators=(",", ":"), allow_nan=False)


def decode_bandit(text: str) -> BanditPlan:
    """The tag's text back to a BanditPlan; BanditTagError names the first wrong field.
    Settings left out take their defaults; arms, started_at and id are required."""
    try:
        obj = json.loads(text)
    except (ValueError, TypeError, RecursionError) as exc:
        raise BanditTagError(f"{BANDIT_TAG}: not valid JSON ({exc})") from None
    try:
        raw = f.fields(BANDIT_TAG, obj, _REQUIRED, _KEYS)
        arms = tuple(f.array("arms", raw["arms"], MAX_TARGETS))  # items: _canonical_arms
        settings: dict[str, Any] = {
            "floor": f.number("floor", raw.get("floor", DEFAULT_FLOOR)),
            "interval_s": f.number("interval_s", raw.get("interval_s", DEFAULT_INTERVAL_S)),
            "min_rewards": f.integer("min_rewards", raw.get("min_rewards", DEFAULT_MIN_REWARDS)),
            "min_change": f.number("min_change", raw.get("min_change", DEFAULT_MIN_CHANGE)),
            "sticky": f.flag("sticky", raw.get("sticky", True)),
        }
        started_at = f.number("started_at", raw["started_at"])
        bandit_id = f.text("id", raw["id"])
    except BanditTagError:
        raise
    except RolloutError as exc:
        raise BanditTagError(str(exc)) from None
    return BanditPlan(arms=arms, started_at=started_at, id=bandit_id, **settings)


def _canonical_arms(arms: object) -> tuple[str, ...]:
    """Two to MAX_TARGETS distinct target texts, canonical."""
    if not isinstance(arms, tuple | list):
        raise BanditTagError(f"arms: must be a list of targets, got {f.shown(arms)}")
    if not 2 <= len(arms) <= MAX_TARGETS:
        raise BanditTagError(f"arms: a bandit needs 2 to {MAX_TARGETS} targets, got {len(arms)}")
    out: list[str] = []
    for i, arm in enumerate(arms):
        if not isinstance(arm, str):
            raise BanditTagError(f"arms[{i}]: must be a target text, got {f.shown(arm)}")
        try:
            text = parse_target(arm).text
        except InvalidTarget as exc:
            raise BanditTagError(f"arms[{i}]: {exc}") from None
        if text in out:
            raise BanditTagError(f"arms[{i}]: {text} is named twice")
        out.append(text)
    return tuple(out)


def _named(message: str) -> str:
    """thompson.py's "bandit floor must be ..." as "floor: must be ..."."""
    for name in ("floor", "min_change", "min_rewards"):
        prefix = f"bandit {name} "
        if message.startswith(prefix):
            return f"{name}: {message[len(prefix) :]}"
    return f"floor: {message}"
