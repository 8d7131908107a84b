"""Which target a request goes to under a traffic policy. Pure: a function of the policy,
the targets with a version loaded, the request's routing key and a random source.

Sticky routing hashes the routing key into one of BUCKETS buckets laid out over the
targets in the policy's order, so every replica sends a key to the same target and a
small weight change moves few keys. The X-Model-Target override is the caller's job.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from registry_watcher.targets import Target
from registry_watcher.traffic_policy import TrafficPolicy, weight_total

ROUTING_KEY_HEADER = "x-routing-key"
BUCKETS = 10_000
_FALLBACK_SALT = "fallback"


def bucket(key: str, salt: str = "") -> int:
    """The key's bucket in [0, BUCKETS): the same in every process, machine and release.

    Python's hash() is salted per process, so it would scatter a user across replicas.
    """
    data = f"{salt}\x00{key}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big") % BUCKETS


@dataclass(frozen=True)
class Decision:
    target: Target
    shadow: Target | None  # mirror the request to this target too, or None
    how: str  # "sticky" or "random": a metric label value


class NoTargetAvailable(Exception):
    """No target of the policy with weight > 0 has a version loaded."""


def available_targets(
    targets: Sequence[Target], loaded: Callable[[Target], object | None]
) -> frozenset[Target]:
    """The targets that have a version loaded: what a policy's weights spread over."""
    return frozenset(t for t in targets if loaded(t) is not None)


def effective_shares(
    policy: TrafficPolicy, available: frozenset[Target] | set[Target]
) -> dict[Target, float]:
    """Shares over the available targets only, in the policy's order.

    A target with no version loaded gets no traffic; its share goes to the others in
    proportion to their weights. Empty when no available target has weight > 0.
    """
    present = _present(policy, available)
    total = weight_total(present)
    if total <= 0:
        return {}
    return {t: w / total for t, w in present}


def decide(
    policy: TrafficPolicy,
    available: frozenset[Target] | set[Target],
    key: str | None,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """Pick the target (and maybe a shadow) for one request; see the module docstring.

    Raises NoTargetAvailable when no target with weight > 0 has a version loaded.
    """
    if policy.sticky and key:
        target = _in_ranges(policy.weights, bucket(key))
        if target not in available:
            # Re-spread only this target's keys: keys of loaded targets never move.
            target = _in_ranges(_usable(policy, available), bucket(key, salt=_FALLBACK_SALT))
        how = "sticky"
    else:
        target = _at_random(_usable(policy, available), rand())
        how = "random"
    return Decision(target=target, shadow=_shadow(policy, available, target, rand), how=how)


def _present(
    policy: TrafficPolicy, available: frozenset[Target] | set[Target]
) -> list[tuple[Target, float]]:
    return [(t, float(w)) for t, w in policy.weights if t in available]


def _usable(
    policy: TrafficPolicy, available: frozenset[Target] | set[Target]
) -> list[tuple[Target, float]]:
    """The available targets with their raw weights; raise if none can take traffic."""
    present = _present(policy, available)
    if not any(w > 0 for _, w in present):
        named = ", ".join(t.text for t in policy.targets())
        raise NoTargetAvailable(
            f"None of the traffic policy's targets ({named}) has a version loaded "
            "(counting only targets with weight > 0)."
        )
    return present


def _in_ranges(weights: Sequence[tuple[Target, float]], b: int) -> Target:
    """The target whose range of [0, BUCKETS) holds bucket ``b``.

    Ranges are consecutive in the given order, widths proportional to the weights. The
    bounds round running sums whose last one is the total itself (same additions, same
    order), so the last bound is exactly BUCKETS and a weight-0 target's range is empty.
    """
    total = weight_total(weights)
    running = 0.0
    for target, w in weights:
        running += w
        if b < round(running / total * BUCKETS):
            return target
    raise AssertionError(f"bucket {b} outside [0, {BUCKETS})")  # pragma: no cover


def _at_random(weights: Sequence[tuple[Target, float]], r: float) -> Target:
    """The target ``r`` in [0, 1) falls on when the weights are laid end to end."""
    point = r * weight_total(weights)
    running = 0.0
    for target, w in weights:
        running += w
        if point < running:
            return target
    # r * total rounded up to total: the last target with a weight.
    return next(t for t, w in reversed(weights) if w > 0)


def _shadow(
    policy: TrafficPolicy,
    available: frozenset[Target] | set[Target],
    chosen: Target,
    rand: Callable[[], float],
) -> Target | None:
    shadow = policy.shadow
    if shadow is None or shadow.target == chosen or shadow.target not in available:
        return None
    return shadow.target if rand() < shadow.percent / 100 else None
