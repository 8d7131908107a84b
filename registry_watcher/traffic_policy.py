"""How a model's traffic is split between its targets, read from a registered-model tag.

The policy lives in the registry (tag ``stageserve.traffic``) so that moving traffic is
a registry change like any other: every replica reads the same JSON and routes the
same way. It is user-written JSON, so validation says exactly which field is wrong::

    {"weights": {"Production": 90, "Staging": 10}, "sticky": true,
     "shadow": {"target": "@challenger", "percent": 25}}
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from registry_watcher.targets import InvalidTarget, Target, parse_target

POLICY_TAG = "stageserve.traffic"
MAX_TARGETS = 32  # more is surely garbage, and each costs a lookup per request

_TOP_KEYS = ("shadow", "sticky", "weights")
_SHADOW_KEYS = ("percent", "target")


class PolicyError(ValueError):
    """A traffic policy that cannot be used; the message names the field and the problem."""


@dataclass(frozen=True)
class Shadow:
    """Mirror ``percent`` % of requests to ``target`` too (its answer is not returned)."""

    target: Target
    percent: float  # 0 < percent <= 100


@dataclass(frozen=True)
class TrafficPolicy:
    """Raw weights in the order written; build through policy_from_dict, which validates."""

    weights: tuple[tuple[Target, float], ...]  # non-negative, sum > 0
    shadow: Shadow | None = None
    sticky: bool = False

    def targets(self) -> tuple[Target, ...]:
        return tuple(target for target, _ in self.weights)

    def weight(self, target: Target) -> float:
        """The raw weight of ``target``; 0.0 for a target the policy does not name."""
        for t, w in self.weights:
            if t == target:
                return float(w)
        return 0.0

    def shares(self) -> dict[Target, float]:
        """Weights normalised to sum to 1.0, in the policy's order."""
        total = weight_total(self.weights)
        return {t: w / total for t, w in self.weights}

    def to_dict(self) -> dict:
        """Canonical JSON-able form: canonical target texts, integral numbers as ints."""
        out: dict = {
            "weights": {t.text: _num_out(w) for t, w in self.weights},
            "sticky": self.sticky,
        }
        if self.shadow is not None:
            out["shadow"] = {
                "target": self.shadow.target.text,
                "percent": _num_out(self.shadow.percent),
            }
        return out

    def to_json(self) -> str:
        """Compact and stable, so equal policies give equal tag values (no spurious diffs)."""
        return json.dumps(self.to_dict(), separators=(",", ":"))


def default_policy(first_target: Target) -> TrafficPolicy:
    """No policy tag: everything to the first target, as without traffic splitting."""
    return TrafficPolicy(weights=((first_target, 100.0),))


def parse_policy(text: str) -> TrafficPolicy:
    """The tag's JSON text to a policy; PolicyError for bad JSON as for bad content."""
    try:
        obj = json.loads(text)
    except (ValueError, TypeError, RecursionError) as exc:
        raise PolicyError(f"policy: not valid JSON ({exc})") from None
    return policy_from_dict(obj)


def policy_from_dict(obj: object) -> TrafficPolicy:
    """Validate a decoded policy; raise PolicyError naming the first wrong field."""
    if not isinstance(obj, dict):
        raise PolicyError(f"policy: must be a JSON object, got {_show(obj)}")
    unknown = [k for k in obj if k not in _TOP_KEYS]
    if unknown:
        raise PolicyError(f"policy: {_unknown(unknown)} (allowed: {', '.join(_TOP_KEYS)})")
    if "weights" not in obj:
        raise PolicyError('weights: required, e.g. {"Production": 90, "Staging": 10}')
    weights = _weights(obj["weights"])
    sticky = obj.get("sticky", False)
    if not isinstance(sticky, bool):
        raise PolicyError(f"sticky: must be true or false, got {_show(sticky)}")
    shadow = _shadow(obj.get("shadow"))
    return TrafficPolicy(weights=weights, shadow=shadow, sticky=sticky)


def check_targets(policy: TrafficPolicy, allowed: tuple[Target, ...]) -> None:
    """Reject a policy naming targets the model does not serve (they could never load)."""
    wrong: dict[Target, list[str]] = {}
    for target in policy.targets():
        if target not in allowed:
            wrong.setdefault(target, []).append("weights")
    if policy.shadow is not None and policy.shadow.target not in allowed:
        wrong.setdefault(policy.shadow.target, []).append("shadow")
    if wrong:
        named = ", ".join(f"{t.text} ({', '.join(where)})" for t, where in wrong.items())
        served = ", ".join(t.text for t in allowed) or "none"
        raise PolicyError(
            f"traffic policy names targets this model does not serve: {named}. "
            f"Targets of this model: {served}."
        )


# --- helpers ------------------------------------------------------------------------


def _target(field: str, text: str) -> Target:
    """Parse a target text, naming the field in the error."""
    try:
        return parse_target(text)
    except InvalidTarget as exc:
        raise PolicyError(f"{field}: {exc}") from None


def _weights(raw: object) -> tuple[tuple[Target, float], ...]:
    if not isinstance(raw, dict):
        raise PolicyError(f"weights: must be an object of target -> weight, got {_show(raw)}")
    if not raw:
        raise PolicyError("weights: must name at least one target")
    if len(raw) > MAX_TARGETS:
        raise PolicyError(f"weights: at most {MAX_TARGETS} targets, got {len(raw)}")
    seen: dict[Target, str] = {}
    out: list[tuple[Target, float]] = []
    for key, value in raw.items():
        if not isinstance(key, str):
            raise PolicyError(f"weights: key {_show(key)} is not a target text")
        target = _target(f"weights: key {key!r}", key)
        if target in seen:
            raise PolicyError(
                f"weights: keys {seen[target]!r} and {key!r} are the same target {target.text}"
            )
        seen[target] = key
        weight = _number(f"weights.{key}", value)
        if weight < 0:
            raise PolicyError(f"weights.{key}: must be a number >= 0, got {_show(value)}")
        out.append((target, weight))
    total = weight_total(out)
    if total <= 0:
        raise PolicyError("weights: all weights are zero; at least one must be > 0")
    if not math.isfinite(total):
        raise PolicyError("weights: the weights are too large to add up; use smaller numbers")
    return tuple(out)


def _shadow(raw: object) -> Shadow | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise PolicyError(
            f'shadow: must be null or an object {{"target": ..., "percent": ...}}, got {_show(raw)}'
        )
    unknown = [k for k in raw if k not in _SHADOW_KEYS]
    if unknown:
        raise PolicyError(f"shadow: {_unknown(unknown)} (allowed: {', '.join(_SHADOW_KEYS)})")
    for key in ("target", "percent"):
        if key not in raw:
            raise PolicyError(f"shadow.{key}: required")
    text = raw["target"]
    if not isinstance(text, str):
        raise PolicyError(f"shadow.target: must be a target text (a string), got {_show(text)}")
    target = _target("shadow.target", text)
    percent = _number("shadow.percent", raw["percent"])
    if not 0 < percent <= 100:
        raise PolicyError(f"shadow.percent: must be > 0 and <= 100, got {_show(raw['percent'])}")
    return Shadow(target=target, percent=percent)


def _number(field: str, value: object) -> float:
    """A finite real number as float; bool is refused although Python calls it an int."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyError(f"{field}: must be a number, got {_show(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range
        number = math.inf
    if not math.isfinite(number):
        raise PolicyError(f"{field}: must be a finite number, got {_show(value)}")
    return number


def weight_total(weights: Sequence[tuple[Target, float]]) -> float:
    """The weights added up in order: the router's bucket ranges and random draws rely
    on it being exactly the last of their own running sums (so not fsum(), which also
    raises on overflow instead of giving inf, nor sum())."""
    total = 0.0
    for _, w in weights:
        total += w
    return total


def _num_out(value: float) -> int | float:
    value = float(value)
    return int(value) if value.is_integer() else value


def _unknown(keys: list[object]) -> str:
    """Reads "unknown key 'x'" or "unknown keys 'x', 'y'"."""
    return ("unknown key " if len(keys) == 1 else "unknown keys ") + ", ".join(
        repr(k) if isinstance(k, str) else _show(k) for k in keys
    )


def _show(value: object) -> str:
    """Values as the user wrote them in JSON (true, null, "5"), else Python's repr."""
    try:
        shown = json.dumps(value)
    except (TypeError, ValueError):
        try:
            shown = repr(value)
        except ValueError:  # an int too long to print
            shown = f"<{type(value).__name__}>"
    return shown if len(shown) <= 60 else shown[:57] + "..."
