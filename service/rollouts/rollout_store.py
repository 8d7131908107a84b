"""A model's rollout in the registry: the ``stageserve.rollout`` tag read and written by
keyed moves, so that the CLI, the admin API and any number of controllers can act on
the same rollout without a store of their own and never apply two decisions for one
revision.

MLflow has no compare-and-set on tags. A write therefore re-reads first (the move must
have been computed from the stored revision: ``is_current``), writes, and re-reads again
(the stored state must be the one written: ``is_applied``). The loser of a race between
two writers sees ``LOST`` and must not act on its move; the winner acts. Effects (the
traffic policy, promotion, decision tags) are idempotent and derived from the stored
state, so a winner that acts twice, or a loser that acted before losing, converges on
the next tick.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Protocol

from registry_watcher.lazy_client import LazyClient
from service.rollouts.progression import Move, is_applied, is_current
from service.rollouts.rollout_plan import Rollout
from service.rollouts.rollout_tag import ROLLOUT_TAG, decode_rollout, encode_rollout
from service.rollouts.tag_fields import RolloutError


class ModelTags(Protocol):
    """The registered-model tag I/O a rollout needs."""

    def model_tags(self, model: str) -> Mapping[str, str]: ...

    def set_model_tag(self, model: str, key: str, value: str) -> None: ...


class RegistryModelTags(LazyClient):
    """``ModelTags`` of an MLflow registry, each call one attempt with a bounded timeout
    (http(s) registries; registry_watcher/poll_client.py). The client is made at the
    first call."""

    def model_tags(self, model: str) -> Mapping[str, str]:
        return dict(self.client.get_registered_model(model).tags or {})

    def set_model_tag(self, model: str, key: str, value: str) -> None:
        self.client.set_registered_model_tag(model, key, value)


class Written(enum.StrEnum):
    """What became of a keyed write."""

    WRITTEN = "written"  # stored, and still stored when re-read: act on it
    STALE = "stale"  # the stored rollout had moved on before the write: nothing written
    LOST = "lost"  # another writer's state replaced it at once: do not act on it


class RolloutStore:
    """Reads a model's rollout and writes moves to it, keyed (see the module's text)."""

    def __init__(self, tags: ModelTags) -> None:
        self.tags = tags

    def read(self, model: str) -> Rollout | None:
        """The model's rollout, None without one; RolloutError for a tag that cannot be
        read (its message names the field), never a half-read rollout."""
        text = self.tags.model_tags(model).get(ROLLOUT_TAG)
        return None if text is None else decode_rollout(text)

    def start(self, model: str, rollout: Rollout, replaces: Rollout | None) -> Written:
        """Store a new rollout, unless the stored one is no longer ``replaces`` (someone
        started or moved one meanwhile)."""
        if rollout.plan.model != model:
            raise RolloutError(f"plan.model: {rollout.plan.model!r} is not {model!r}")
        if not _same(self._read_or_none(model), replaces):
            return Written.STALE
        self.tags.set_model_tag(model, ROLLOUT_TAG, encode_rollout(rollout))
        return Written.WRITTEN if _same(self._read_or_none(model), rollout) else Written.LOST

    def write(self, model: str, move: Move) -> Written:
        """Store ``move``'s state if the stored rollout is still the one it was computed
        from; LOST when, re-read, the stored state is not the one written."""
        stored = self._read_or_none(model)
        if stored is None or not is_current(stored, move):
            return Written.STALE
        self.tags.set_model_tag(
            model, ROLLOUT_TAG, encode_rollout(Rollout(stored.plan, move.state))
        )
        return Written.WRITTEN if is_applied(self._read_or_none(model), move) else Written.LOST

    def _read_or_none(self, model: str) -> Rollout | None:
        try:
            return self.read(model)
        except RolloutError:
            return None


def rollout_key(rollout: Rollout) -> tuple[str, int]:
    """What identifies a stored rollout state: its plan and revision."""
    return rollout.plan.id, rollout.state.revision


def _same(stored: Rollout | None, expected: Rollout | None) -> bool:
    """The same plan at the same revision (or both absent)."""
    if stored is None or expected is None:
        return stored is expected
    return rollout_key(stored) == rollout_key(expected)
