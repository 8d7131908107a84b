"""What a served model's target is: a registry stage, an alias or a pinned version.

Targets are written the way users type them: ``Production``, ``@champion``, ``3``.
Their canonical text is what the ``X-Model-Target`` header carries both ways.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

# MLflow's own stages, with its capitalisation; matching is case-insensitive as in MLflow.
KNOWN_STAGES = ("None", "Staging", "Production", "Archived")
_ALIAS_RE = re.compile(r"^[A-Za-z0-9_\-]+$")


class TargetKind(enum.Enum):
    STAGE = "stage"
    ALIAS = "alias"
    VERSION = "version"


class InvalidTarget(ValueError):
    """A target text that names no stage, alias or version."""


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    value: str  # stage name (canonical case), alias without '@', or version digits

    @property
    def text(self) -> str:
        """Canonical spelling: what users write and what responses report."""
        if self.kind is TargetKind.ALIAS:
            return f"@{self.value}"
        return self.value

    def __str__(self) -> str:
        return self.text

    def __lt__(self, other: Target) -> bool:
        """Stable order for diffs and listings: by kind, then by value."""
        return (self.kind.value, self.value) < (other.kind.value, other.value)


def parse_target(text: str) -> Target:
    """Parse ``Production`` / ``@champion`` / ``3`` into a Target.

    Stage names are case-insensitive and canonicalised to MLflow's spelling; any other
    word is accepted as a custom stage name (MLflow OSS only knows its four, but
    other registries may have more).
    """
    raw = (text or "").strip()
    if not raw:
        raise InvalidTarget("empty target: use a stage (Production), an @alias or a version")
    if raw.startswith("@"):
        alias = raw[1:]
        if not _ALIAS_RE.match(alias):
            raise InvalidTarget(f"invalid alias {raw!r}: letters, digits, '_' and '-' only")
        return Target(TargetKind.ALIAS, alias)
    if raw.isascii() and raw.isdigit():
        if int(raw) < 1:
            raise InvalidTarget(f"invalid version {raw!r}: versions start at 1")
        return Target(TargetKind.VERSION, str(int(raw)))
    if not _ALIAS_RE.match(raw):
        raise InvalidTarget(
            f"invalid target {raw!r}: use a stage (Production), an @alias or a version number"
        )
    for stage in KNOWN_STAGES:
        if stage.lower() == raw.lower():
            return Target(TargetKind.STAGE, stage)
    return Target(TargetKind.STAGE, raw)


def require_mlflow_stage(target: Target) -> Target:
    """Refuse a stage MLflow cannot have: MLflow 3 accepts only its four stages (any
    other raises INVALID_PARAMETER_VALUE), so such a target would wait forever. Most
    often it is an alias written without its '@'."""
    if target.kind is TargetKind.STAGE and target.value not in KNOWN_STAGES:
        raise InvalidTarget(
            f"{target.value!r} is not an MLflow stage ({', '.join(KNOWN_STAGES)}); "
            f"for an alias write '@{target.value}'"
        )
    return target


def parse_targets(texts: list[str] | tuple[str, ...]) -> tuple[Target, ...]:
    """Parse a target list, rejecting duplicates (they would silently share traffic)."""
    targets = tuple(parse_target(t) for t in texts)
    if not targets:
        raise InvalidTarget("at least one target is needed")
    seen: set[Target] = set()
    for target in targets:
        if target in seen:
            raise InvalidTarget(f"target {target.text!r} is listed twice")
        seen.add(target)
    return targets


DEFAULT_TARGETS: tuple[Target, ...] = (
    Target(TargetKind.STAGE, "Production"),
    Target(TargetKind.STAGE, "Staging"),
)
