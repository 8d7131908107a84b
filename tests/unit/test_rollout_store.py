"""service/rollouts/rollout_store.py: keyed writes of the rollout tag, against an
in-memory tag store that can let another writer in between a write and its re-read."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from service.rollouts.progression import abort, start_rollout
from service.rollouts.rollout_plan import Phase, Rollout, RolloutPlan
from service.rollouts.rollout_store import RolloutStore, Written
from service.rollouts.rollout_tag import ROLLOUT_TAG, decode_rollout, encode_rollout
from service.rollouts.tag_fields import RolloutError

T0 = 1_764_500_000.0


class Tags:
    """Registered-model tags in memory; ``after_set`` runs right after each write (a
    racing writer)."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, str]] = {}
        self.after_set: Callable[[], None] | None = None
        self.writes = 0

    def model_tags(self, model: str) -> Mapping[str, str]:
        return dict(self.values.get(model, {}))

    def set_model_tag(self, model: str, key: str, value: str) -> None:
        self.values.setdefault(model, {})[key] = value
        self.writes += 1
        if self.after_set is not None:
            racing, self.after_set = self.after_set, None
            racing()


def plan(plan_id: str = "p1") -> RolloutPlan:
    return RolloutPlan(id=plan_id, model="churn", control="Production", candidate="Staging",
                       candidate_version=7, created_at=T0)  # fmt: skip


def started(tags: Tags, plan_id: str = "p1") -> Rollout:
    rollout = start_rollout(plan(plan_id), T0, "cli")
    assert RolloutStore(tags).start("churn", rollout, None) is Written.WRITTEN
    return rollout


def test_no_tag_is_no_rollout_and_a_bad_tag_names_its_field() -> None:
    tags = Tags()
    store = RolloutStore(tags)
    assert store.read("churn") is None
    tags.values["churn"] = {ROLLOUT_TAG: '{"v": 1, "plan": {}, "state": {}}'}
    with pytest.raises(RolloutError, match="plan"):
        store.read("churn")


def test_a_move_from_the_stored_revision_is_written() -> None:
    tags = Tags()
    rollout = started(tags)
    move = abort(rollout.plan, rollout.state, T0 + 5, "ops", "enough")
    assert RolloutStore(tags).write("churn", move) is Written.WRITTEN
    stored = RolloutStore(tags).read("churn")
    assert stored is not None and stored.state.phase is Phase.ABORTED
    assert stored.state.revision == rollout.state.revision + 1


def test_a_move_from_an_older_revision_writes_nothing() -> None:
    tags = Tags()
    rollout = started(tags)
    first = abort(rollout.plan, rollout.state, T0 + 5, "ops", "one")
    second = abort(rollout.plan, rollout.state, T0 + 6, "ops2", "two")
    store = RolloutStore(tags)
    assert store.write("churn", first) is Written.WRITTEN
    writes = tags.writes
    assert store.write("churn", second) is Written.STALE
    assert tags.writes == writes  # nothing written
    stored = store.read("churn")
    assert stored is not None and stored.state.history[-1].by == "ops"


def test_a_writer_overwritten_at_once_learns_it_lost() -> None:
    tags = Tags()
    rollout = started(tags)
    mine = abort(rollout.plan, rollout.state, T0 + 5, "controller-a", "a")
    theirs = abort(rollout.plan, rollout.state, T0 + 5, "controller-b", "b")
    text = encode_rollout(Rollout(rollout.plan, theirs.state))
    tags.after_set = lambda: tags.set_model_tag("churn", ROLLOUT_TAG, text)
    assert RolloutStore(tags).write("churn", mine) is Written.LOST
    assert decode_rollout(tags.values["churn"][ROLLOUT_TAG]).state.history[-1].by == "controller-b"


def test_a_start_is_refused_when_someone_started_one_meanwhile() -> None:
    tags = Tags()
    store = RolloutStore(tags)
    started(tags, "p1")  # someone else, after we read "no rollout"
    mine = start_rollout(plan("p2"), T0, "cli")
    assert store.start("churn", mine, None) is Written.STALE
    stored = store.read("churn")
    assert stored is not None and stored.plan.id == "p1"


def test_a_start_replacing_a_finished_rollout_and_a_wrong_model() -> None:
    tags = Tags()
    old = started(tags, "p1")
    ended = abort(old.plan, old.state, T0 + 1, "ops", "")
    store = RolloutStore(tags)
    assert store.write("churn", ended) is Written.WRITTEN
    finished = store.read("churn")
    new = start_rollout(plan("p2"), T0 + 2, "cli", existing=finished)
    assert store.start("churn", new, finished) is Written.WRITTEN
    with pytest.raises(RolloutError, match="is not 'other'"):
        store.start("other", new, None)
