"""Turn one registry read into the desired state. Pure: no I/O here.

The registry read is ``search_registered_models(name IN (...))``: per model its
``latest_versions`` (the highest version in each stage, which is what
``models:/name/Stage`` resolves to), its aliases and its tags. Aliases and pinned
versions that are not among the latest versions need their details from elsewhere;
:func:`versions_to_fetch` says which, and the caller passes them in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from registry_watcher.state import DesiredState, ModelState, VersionRef
from registry_watcher.targets import Target, TargetKind

READY = "READY"


@dataclass(frozen=True)
class RegistryVersion:
    model: str
    version: int
    stage: str
    source: str
    run_id: str | None
    status: str = READY

    def ref(self) -> VersionRef:
        return VersionRef(self.model, self.version, self.source, self.run_id)

    @classmethod
    def from_entity(cls, mv: Any) -> RegistryVersion:
        """From an ``mlflow.entities.model_registry.ModelVersion``."""
        return cls(
            model=mv.name,
            version=int(mv.version),
            stage=mv.current_stage or "None",
            source=mv.source or "",
            run_id=mv.run_id or None,
            status=str(mv.status or READY),
        )


@dataclass(frozen=True)
class RegistryModel:
    name: str
    creation_timestamp: int | None
    latest_versions: tuple[RegistryVersion, ...] = ()
    aliases: Mapping[str, int] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_entity(cls, rm: Any) -> RegistryModel:
        """From an ``mlflow.entities.model_registry.RegisteredModel``."""
        return cls(
            name=rm.name,
            creation_timestamp=rm.creation_timestamp,
            latest_versions=tuple(RegistryVersion.from_entity(v) for v in rm.latest_versions or ()),
            aliases={str(k): int(v) for k, v in (rm.aliases or {}).items()},
            tags=dict(rm.tags or {}),
        )


# Version details cache key: the model's creation time tells a deleted-and-recreated
# model apart, whose version 1 is not the old version 1.
VersionKey = tuple[str, int | None, int]


def version_key(model: RegistryModel, version: int) -> VersionKey:
    return (model.name, model.creation_timestamp, version)


def _wanted_version(model: RegistryModel, target: Target) -> int | None:
    if target.kind is TargetKind.ALIAS:
        return model.aliases.get(target.value)
    if target.kind is TargetKind.VERSION:
        return int(target.value)
    return None


def _off_snapshot(
    snapshot: Iterable[RegistryModel], targets: Mapping[str, tuple[Target, ...]]
) -> list[tuple[RegistryModel, int, Target]]:
    """Alias and version targets pointing at versions not among the latest versions."""
    found: list[tuple[RegistryModel, int, Target]] = []
    for model in snapshot:
        in_snapshot = {v.version for v in model.latest_versions}
        for target in targets.get(model.name, ()):
            wanted = _wanted_version(model, target)
            if wanted is not None and wanted not in in_snapshot:
                found.append((model, wanted, target))
    return found


def versions_to_fetch(
    snapshot: Iterable[RegistryModel],
    targets: Mapping[str, tuple[Target, ...]],
    known: Mapping[VersionKey, RegistryVersion | None],
) -> list[tuple[RegistryModel, int]]:
    """Versions whose details the snapshot lacks and that must be read this poll.

    An alias's version details are cached (``known``): a version's source never
    changes, and deleting a version deletes its aliases. A pinned version is read
    every poll, so that deleting it is noticed.
    """
    missing: list[tuple[RegistryModel, int]] = []
    for model, wanted, target in _off_snapshot(snapshot, targets):
        cached = target.kind is TargetKind.ALIAS and version_key(model, wanted) in known
        if not cached and (model, wanted) not in missing:
            missing.append((model, wanted))
    return missing


def cacheable_keys(
    snapshot: Iterable[RegistryModel], targets: Mapping[str, tuple[Target, ...]]
) -> set[VersionKey]:
    """Version details worth keeping for the next poll: those aliases point at now."""
    return {
        version_key(model, wanted)
        for model, wanted, target in _off_snapshot(snapshot, targets)
        if target.kind is TargetKind.ALIAS
    }


def _resolve_target(
    model: RegistryModel,
    target: Target,
    known: Mapping[VersionKey, RegistryVersion | None],
) -> tuple[RegistryVersion | None, str | None]:
    """The version a target points at, or None with the reason."""
    if target.kind is TargetKind.STAGE:
        for version in model.latest_versions:
            if version.stage.lower() == target.value.lower():
                return version, None
        return None, f"no version in stage {target.value}"
    wanted = _wanted_version(model, target)
    if wanted is None:
        return None, f"alias {target.text} is not set"
    for version in model.latest_versions:
        if version.version == wanted:
            return version, None
    details = known.get(version_key(model, wanted))
    if details is None:
        return None, f"version {wanted} does not exist"
    return details, None


def resolve_model(
    name: str,
    targets: tuple[Target, ...],
    model: RegistryModel | None,
    known: Mapping[VersionKey, RegistryVersion | None],
    previous: ModelState | None = None,
) -> ModelState:
    """Resolve every target of one served model.

    A version that is not READY yet (still being registered) does not replace what
    the target had: the previous resolution is kept until it is ready.
    """
    if model is None:
        return ModelState(
            name=name,
            found=False,
            targets={t: None for t in targets},
            notes={t: "model not found in the registry" for t in targets},
        )
    resolved: dict[Target, VersionRef | None] = {}
    notes: dict[Target, str] = {}
    for target in targets:
        version, reason = _resolve_target(model, target, known)
        if version is not None and version.status != READY:
            kept = previous.targets.get(target) if previous else None
            resolved[target] = kept
            notes[target] = f"version {version.version} is {version.status}, not READY yet"
            continue
        resolved[target] = version.ref() if version else None
        if reason:
            notes[target] = reason
    return ModelState(name=name, found=True, targets=resolved, tags=dict(model.tags), notes=notes)


def resolve_state(
    targets: Mapping[str, tuple[Target, ...]],
    snapshot: Iterable[RegistryModel],
    known: Mapping[VersionKey, RegistryVersion | None],
    previous: DesiredState | None = None,
) -> DesiredState:
    """The desired state of every served model from one registry snapshot."""
    by_name = {m.name: m for m in snapshot}
    prev_models = previous.models if previous else {}
    return DesiredState(
        models={
            name: resolve_model(
                name, model_targets, by_name.get(name), known, prev_models.get(name)
            )
            for name, model_targets in targets.items()
        }
    )


def name_filter(names: Iterable[str]) -> str:
    """The ``name IN (...)`` filter for one search call over all served models."""
    quoted = ", ".join(
        "'" + n.replace("\\", "\\\\").replace("'", "\\'") + "'" for n in sorted(set(names))
    )
    return f"name IN ({quoted})"
