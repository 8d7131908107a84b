"""What happens to a target the registry empties: the pool's availability policy.

TensorFlow Serving's manager asks a policy, not itself, whether it may unload a
version before its successor is ready; its default, the *availability-preserving*
policy, never leaves a servable with nothing to serve. stageserve's equivalent
question is narrower: a target that served version N now resolves to nothing (the
model was deleted or renamed, a search briefly came back empty, the only Production
version was archived, an alias was deleted). Keep serving N, or stop?

* ``FailStatic`` (the default, ``--on-empty keep``): a *required* target keeps the
  version it has and is flagged ``stale``, so a registry mistake never turns into an
  outage of every replica at once; an optional target (Staging, a canary alias) stops
  at once and its share of traffic goes to the others.
* ``UnloadEmptied`` (``--on-empty unload``): every emptied target stops at once, for
  operators who want the registry to be able to take a model out of service.

Pure: the pool applies the verdict; nothing here touches a slot.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol


class OnEmpty(StrEnum):
    """The operator's choice, as ``STAGESERVE_ON_EMPTY`` / ``--on-empty`` spell it."""

    KEEP = "keep"
    UNLOAD = "unload"


class EmptiedVerdict(StrEnum):
    KEEP = "keep"  # go on serving the loaded version, flagged stale
    UNLOAD = "unload"  # take the target out of traffic now


class AvailabilityPolicy(Protocol):
    def on_emptied(self, required: bool) -> EmptiedVerdict:
        """The verdict for a target that has a version loaded and now resolves to
        nothing in the registry."""
        ...


class FailStatic:
    """Required targets keep what they serve; optional targets empty at once."""

    def on_emptied(self, required: bool) -> EmptiedVerdict:
        return EmptiedVerdict.KEEP if required else EmptiedVerdict.UNLOAD

    def __repr__(self) -> str:
        return "FailStatic()"


class UnloadEmptied:
    """Every emptied target stops serving at once (the registry is obeyed literally)."""

    def on_emptied(self, required: bool) -> EmptiedVerdict:
        return EmptiedVerdict.UNLOAD

    def __repr__(self) -> str:
        return "UnloadEmptied()"


def policy_for(on_empty: OnEmpty | str) -> AvailabilityPolicy:
    """The policy an ``--on-empty`` value names."""
    choice = OnEmpty(on_empty)
    return FailStatic() if choice is OnEmpty.KEEP else UnloadEmptied()


# Shown when the watcher left no note (it always does for a resolved model; kept for
# desired states built by hand).
DEFAULT_STALE_REASON = "the registry names no version for this target"
