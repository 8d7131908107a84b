"""What the model pool needs of a loaded version, and how a load reports failure.

The pool (``pool.py``) only ever reads a loaded version's ``ref`` (to tell which version
a target serves) and keeps or drops a reference to it: it never calls the model, never
closes it (a version is freed, with its files, when the last request holding it ends).
So it depends on this protocol and on a loader callable, not on the servable of
``service/inference/loaded_version.py``, and importing it pulls in no batcher, codec or
MLflow scoring server (tests/unit/test_servable.py checks that).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from registry_watcher.state import VersionRef
from registry_watcher.targets import Target


class Servable(Protocol):
    """A version in memory, ready to take traffic."""

    @property
    def ref(self) -> VersionRef:
        """The registered version this is."""
        ...


S = TypeVar("S", bound=Servable)
S_co = TypeVar("S_co", bound=Servable, covariant=True)


class LoadedVersions(Protocol[S_co]):
    """The pool as its readers see it (request path, traffic control): each served
    model's targets, and what each target serves now."""

    def models(self) -> tuple[str, ...]: ...

    def targets(self, model: str) -> tuple[Target, ...]: ...

    def get(self, model: str, target: Target) -> S_co | None: ...


# Makes a version servable (download, load, probe) or raises; runs on a load thread.
Loader = Callable[[VersionRef], S]


class LoadError(Exception):
    """A version that could not be loaded or failed its smoke test."""

    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage  # "load" or "smoke_test": the swap metric's result label
