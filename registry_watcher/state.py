"""The desired state: which version each target of each served model should serve.

Plain immutable data, compared by content. MLflow does not bump
``last_updated_timestamp`` on alias or tag changes, so change detection never
looks at timestamps: only at what a target resolves to and at the tags.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from registry_watcher.targets import Target


@dataclass(frozen=True)
class VersionRef:
    """One registered model version, as much as serving needs to know about it."""

    model: str
    version: int
    source: str = ""
    run_id: str | None = None

    @property
    def uri(self) -> str:
        """Registry URI that loads exactly this version, whatever stage it moves to."""
        return f"models:/{self.model}/{self.version}"


@dataclass(frozen=True)
class ModelState:
    """What the registry says about one served model."""

    name: str
    found: bool
    targets: Mapping[Target, VersionRef | None]
    tags: Mapping[str, str] = field(default_factory=dict)
    # Per target, why it resolved to nothing or kept its previous version.
    notes: Mapping[Target, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DesiredState:
    models: Mapping[str, ModelState] = field(default_factory=dict)

    def version_for(self, model: str, target: Target) -> VersionRef | None:
        state = self.models.get(model)
        return None if state is None else state.targets.get(target)


@dataclass(frozen=True)
class TargetChange:
    """A target whose resolved version differs between two desired states."""

    model: str
    target: Target
    old: VersionRef | None
    new: VersionRef | None


@dataclass(frozen=True)
class StateDiff:
    target_changes: tuple[TargetChange, ...] = ()
    # Models whose registered-model tags changed (the traffic policy lives in a tag).
    tag_changes: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.target_changes or self.tag_changes)


def diff_states(old: DesiredState, new: DesiredState) -> StateDiff:
    """Content diff of two desired states, in a stable order (model, then target)."""
    changes: list[TargetChange] = []
    tag_changes: list[str] = []
    for model in sorted(set(old.models) | set(new.models)):
        old_model = old.models.get(model)
        new_model = new.models.get(model)
        old_targets = old_model.targets if old_model else {}
        new_targets = new_model.targets if new_model else {}
        for target in sorted(set(old_targets) | set(new_targets)):
            before = old_targets.get(target)
            after = new_targets.get(target)
            if before != after:
                changes.append(TargetChange(model, target, before, after))
        old_tags = dict(old_model.tags) if old_model else {}
        new_tags = dict(new_model.tags) if new_model else {}
        if old_tags != new_tags:
            tag_changes.append(model)
    return StateDiff(tuple(changes), tuple(tag_changes))
