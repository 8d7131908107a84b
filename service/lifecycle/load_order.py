"""Which pending version the pool loads first: the pool's load-order policy.

TensorFlow Serving's manager asks its aspired-version policy which action to take next;
stageserve's pool asks this policy in which order to consider the versions that targets
wait for (the pool still loads one version per model at a time, and switches at once to
a version another target already serves). Pure: it orders, the pool acts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

from registry_watcher.state import VersionRef


class Wanted(Protocol):
    """A version some targets wait for."""

    @property
    def ref(self) -> VersionRef: ...

    @property
    def required(self) -> bool:
        """Whether a required target (readiness) waits for it."""
        ...


W = TypeVar("W", bound=Wanted)


class LoadOrder(Protocol):
    def order(self, wanted: Iterable[W]) -> list[W]:
        """The same versions, the one to load first first."""
        ...


class RequiredFirst:
    """Versions a required target waits for first, so that readiness comes as early as
    possible; then by model name. Ties keep the order they came in."""

    def order(self, wanted: Iterable[W]) -> list[W]:
        return sorted(wanted, key=lambda w: (not w.required, w.ref.model))

    def __repr__(self) -> str:
        return "RequiredFirst()"
