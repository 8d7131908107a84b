"""Which version a target names in the registry now: what a rollout's start pins as the
candidate version (and checks the control against). Resolved the way the watcher
resolves targets (registry_watcher/snapshot.py): a stage -> its latest version, an
alias -> its version, a number -> that version, if it exists and is READY."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from registry_watcher.snapshot import (
    RegistryModel,
    RegistryVersion,
    resolve_model,
    version_key,
    versions_to_fetch,
)
from registry_watcher.targets import Target


class NoVersion(Exception):
    """The target names no version now; the message says which and why."""


class RegistryVersions(Protocol):
    """The registry reads this needs (registry_watcher/reader.py RegistryReader)."""

    def search(self, names: Sequence[str]) -> list[RegistryModel]: ...

    def get_version(self, model: str, version: int) -> RegistryVersion | None: ...


def versions_now(
    registry: RegistryVersions, model: str, targets: tuple[Target, ...]
) -> dict[Target, int]:
    """The version each target names now; NoVersion for the first that names none."""
    found = next((m for m in registry.search([model]) if m.name == model), None)
    if found is None:
        raise NoVersion(f"model {model!r} is not in the registry")
    wanted = {model: targets}
    known = {
        version_key(m, v): registry.get_version(model, v)
        for m, v in versions_to_fetch([found], wanted, {})
    }
    resolved = resolve_model(model, targets, found, known)
    out: dict[Target, int] = {}
    for target in targets:
        ref = resolved.targets.get(target)
        if ref is None:
            why = resolved.notes.get(target, "no version")
            raise NoVersion(f"{target.text} of model {model!r} names no version now ({why})")
        out[target] = ref.version
    return out
