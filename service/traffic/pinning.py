"""Requests that pin their target with ``X-Model-Target``. Pure: a function of the
model's targets, what is loaded, and the header's text.

An override names a configured target (``Staging``, ``@champion``) or a version number
that one of the targets is serving right now. Requests without it follow the model's
traffic policy (service/traffic/router.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from registry_watcher.targets import InvalidTarget, Target, TargetKind, parse_target
from service.errors import ServingError, bad_request, unavailable

TARGET_HEADER = "x-model-target"

V = TypeVar("V")  # a loaded version; anything with .ref.version


@dataclass(frozen=True)
class Route(Generic[V]):
    target: Target
    loaded: V


def _valid(targets: tuple[Target, ...]) -> str:
    return ", ".join(t.text for t in targets)


def pin(
    model: str,
    targets: tuple[Target, ...],
    loaded: Callable[[Target], V | None],
    override: str,
) -> Route[V]:
    """The target an ``X-Model-Target`` override names, and its version; a ServingError
    when the text names no target of this model or the target has nothing loaded."""
    target = _resolve_override(model, targets, loaded, override)
    version = loaded(target)
    if version is None:
        raise unavailable(
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
        raise bad_request(
            f"Invalid X-Model-Target {override!r}: {exc}. Valid targets of model {model!r}: "
            f"{_valid(targets)}.",
            "INVALID_PARAMETER_VALUE",
        ) from None
    if wanted in targets:
        return wanted
    if wanted.kind is TargetKind.VERSION:
        for target in targets:
            version = loaded(target)
            if version is not None and str(version.ref.version) == wanted.value:  # type: ignore[attr-defined]
                return target
    raise ServingError(
        400,
        "INVALID_PARAMETER_VALUE",
        f"Unknown X-Model-Target {override!r} for model {model!r}. Valid targets: "
        f"{_valid(targets)}, or the version number one of them serves.",
    )
