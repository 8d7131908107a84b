"""Requests that pin their target with ``X-Model-Target``. Pure: a function of the
model's targets, what is loaded, and the header's text.

An override names a configured target (``Staging``, ``@champion``) or a version number
that one of the targets is serving right now. Requests without it follow the model's
traffic policy (service/traffic/router.py). Refusals are domain errors (an override
that names nothing, a target with nothing loaded); service/errors.py says how each is
answered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from registry_watcher.state import VersionRef
from registry_watcher.targets import InvalidTarget, Target, TargetKind, parse_target

TARGET_HEADER = "x-model-target"


class Versioned(Protocol):
    """A loaded version: all pinning needs of it is which version it is."""

    @property
    def ref(self) -> VersionRef: ...


V = TypeVar("V", bound=Versioned)


@dataclass(frozen=True)
class Route(Generic[V]):
    target: Target
    loaded: V


class OverrideRefused(Exception):
    """An ``X-Model-Target`` override that cannot be followed; the message says why."""


class UnknownOverride(OverrideRefused):
    """The override's text is not a target, or names no target of this model."""


class NothingLoaded(OverrideRefused):
    """The override names a target of this model that has no version loaded."""


def _valid(targets: tuple[Target, ...]) -> str:
    return ", ".join(t.text for t in targets)


def pin(
    model: str,
    targets: tuple[Target, ...],
    loaded: Callable[[Target], V | None],
    override: str,
) -> Route[V]:
    """The target an ``X-Model-Target`` override names, and its version. Raises
    UnknownOverride when the text names no target of this model, NothingLoaded when
    the target it names has nothing loaded."""
    target = _resolve_override(model, targets, loaded, override)
    version = loaded(target)
    if version is None:
        raise NothingLoaded(
            f"Model {model!r} target {target.text} has no version loaded. "
            f"Targets of this model: {_valid(targets)}."
        )
    return Route(target, version)


def _resolve_override(
    model: str,
    targets: tuple[Target, ...],
    loaded: Callable[[Target], V | None],
    override: str,
) -> Target:
    try:
        wanted = parse_target(override)
    except InvalidTarget as exc:
        raise UnknownOverride(
            f"Invalid X-Model-Target {override!r}: {exc}. Valid targets of model {model!r}: "
            f"{_valid(targets)}."
        ) from None
    if wanted in targets:
        return wanted
    if wanted.kind is TargetKind.VERSION:
        for target in targets:
            version = loaded(target)
            if version is not None and str(version.ref.version) == wanted.value:
                return target
    raise UnknownOverride(
        f"Unknown X-Model-Target {override!r} for model {model!r}. Valid targets: "
        f"{_valid(targets)}, or the version number one of them serves."
    )
