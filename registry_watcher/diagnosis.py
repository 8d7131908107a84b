"""Why a served model or target resolves to nothing, said once, with what does exist.

A misspelt ``--model`` or ``--target @alias`` otherwise gives a gateway that is never
ready and never says why. After each successful poll the watcher hands the snapshot and
the resolved state here; a problem is reported on the first poll where it appears (not
every poll), and again only if it clears and comes back. Listing the registry's model
names for a did-you-mean costs one extra search call, made only on a poll where a model
has just gone missing. Pure apart from that injected call.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from registry_watcher.snapshot import RegistryModel
from registry_watcher.state import DesiredState
from registry_watcher.targets import Target, TargetKind

MAX_LISTED = 10


@dataclass(frozen=True)
class Finding:
    model: str
    target: Target | None  # None: the model itself is missing
    level: int
    message: str


def did_you_mean(word: str, candidates: Iterable[str], prefix: str = "") -> str | None:
    """The closest candidate, spelt as the user would write it, if one is close enough."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"{prefix}{close[0]}" if close else None


def _listing(items: Sequence[str]) -> str:
    if not items:
        return "none"
    shown = ", ".join(items[:MAX_LISTED])
    return shown if len(items) <= MAX_LISTED else f"{shown}, ... ({len(items)} in all)"


def missing_model_message(name: str, registry_names: Sequence[str] | None) -> str:
    message = f"model {name!r} not found in the registry"
    if registry_names is None:
        return message
    guess = did_you_mean(name, registry_names)
    if guess is not None:
        return f"{message}; did you mean {guess!r}?"
    return f"{message}; registered models: {_listing(sorted(registry_names))}"


def target_message(model: RegistryModel, target: Target, note: str | None) -> str:
    """Why ``target`` of a model that exists points at nothing, with what it has."""
    if target.kind is TargetKind.ALIAS:
        aliases = sorted(model.aliases)
        message = f"alias {target.text} is not set on {model.name}; aliases: {_listing(aliases)}"
        guess = did_you_mean(target.value, aliases, prefix="@")
        return f"{message}; did you mean {guess}?" if guess else message
    if target.kind is TargetKind.STAGE:
        stages = [f"{v.stage}: v{v.version}" for v in model.latest_versions]
        return (
            f"no version of {model.name} is in stage {target.value}; "
            f"latest versions by stage: {_listing(stages)}"
        )
    return f"{model.name} {target.text}: {note or 'resolves to no version'}"


class ResolutionDiagnosis:
    """Remembers what was reported, so each problem is logged once per occurrence."""

    def __init__(
        self,
        targets: Mapping[str, tuple[Target, ...]],
        list_names: Callable[[], Sequence[str]] | None = None,
    ) -> None:
        self._targets = dict(targets)
        self._list_names = list_names
        self._reported: set[tuple[str, Target | None]] = set()

    def check(self, snapshot: Iterable[RegistryModel], state: DesiredState) -> list[Finding]:
        """Findings new since the last check; the first target of a model is required."""
        by_name = {m.name: m for m in snapshot}
        current: list[tuple[str, Target | None]] = []
        for name, targets in self._targets.items():
            model_state = state.models.get(name)
            if name not in by_name or model_state is None or not model_state.found:
                current.append((name, None))
                continue
            current += [(name, t) for t in targets if model_state.targets.get(t) is None]
        new = [key for key in current if key not in self._reported]
        self._reported = set(current)
        names = self._registry_names() if any(t is None for _, t in new) else None
        findings = []
        for name, target in new:
            if target is None:
                message = missing_model_message(name, names)
                findings.append(Finding(name, None, logging.WARNING, message))
                continue
            model_state = state.models[name]
            message = target_message(by_name[name], target, model_state.notes.get(target))
            required = target == self._targets[name][0]
            level = logging.WARNING if required or target.kind is TargetKind.ALIAS else logging.INFO
            findings.append(Finding(name, target, level, message))
        return findings

    def _registry_names(self) -> Sequence[str] | None:
        if self._list_names is None:
            return None
        try:
            return list(self._list_names())
        except Exception:  # a hint is not worth failing a poll for
            return None
