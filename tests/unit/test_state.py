"""registry_watcher.state: desired-state values and their content diff."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry_watcher.state import (
    DesiredState,
    ModelState,
    StateDiff,
    TargetChange,
    VersionRef,
    diff_states,
)
from registry_watcher.targets import Target, TargetKind, parse_target

FAST = settings(max_examples=150, deadline=None, database=None, derandomize=True)

PROD = parse_target("Production")
STAGING = parse_target("Staging")
ARCHIVED = parse_target("Archived")
CHAMP = parse_target("@champion")
V3 = parse_target("3")


def ref(n: int, model: str = "m", run_id: str | None = None) -> VersionRef:
    return VersionRef(model, n, f"s3://b/{model}/{n}", run_id or f"run{n}")


def state(**models: dict[Target, VersionRef | None]) -> DesiredState:
    return DesiredState({name: ModelState(name, True, dict(ts)) for name, ts in models.items()})


def with_tags(desired: DesiredState, model: str, tags: dict[str, str]) -> DesiredState:
    models = dict(desired.models)
    old = models[model]
    models[model] = ModelState(old.name, old.found, old.targets, tags, old.notes)
    return DesiredState(models)


# --- VersionRef ---------------------------------------------------------------------


def test_version_ref_equality_is_by_content() -> None:
    a = VersionRef("m", 3, "s3://x", "r")
    b = VersionRef("m", 3, "s3://x", "r")
    assert a == b
    assert a is not b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1


def test_version_ref_differs_by_any_field() -> None:
    base = VersionRef("m", 3, "s3://x", "r")
    assert base != VersionRef("n", 3, "s3://x", "r")
    assert base != VersionRef("m", 4, "s3://x", "r")
    assert base != VersionRef("m", 3, "s3://y", "r")
    assert base != VersionRef("m", 3, "s3://x", None)


def test_version_ref_defaults_and_uri() -> None:
    r = VersionRef("fraud model", 12)
    assert r.source == ""
    assert r.run_id is None
    assert r.uri == "models:/fraud model/12"
    assert VersionRef("m", 1).uri == "models:/m/1"


def test_version_ref_is_immutable() -> None:
    r = VersionRef("m", 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.version = 2  # type: ignore[misc]
    assert r.version == 1


# --- DesiredState -------------------------------------------------------------------


def test_version_for() -> None:
    desired = state(m={PROD: ref(1), STAGING: None})
    assert desired.version_for("m", PROD) == ref(1)
    assert desired.version_for("m", STAGING) is None
    assert desired.version_for("m", CHAMP) is None
    assert desired.version_for("other", PROD) is None
    assert DesiredState().version_for("m", PROD) is None


# --- StateDiff ----------------------------------------------------------------------


def test_state_diff_truthiness() -> None:
    assert not StateDiff()
    assert bool(StateDiff(tag_changes=("m",)))
    assert bool(StateDiff(target_changes=(TargetChange("m", PROD, None, ref(1)),)))


# --- diff_states --------------------------------------------------------------------


def test_no_change() -> None:
    a = state(m={PROD: ref(1), STAGING: ref(2)})
    b = state(m={PROD: ref(1), STAGING: ref(2)})  # equal content, distinct objects
    diff = diff_states(a, b)
    assert diff == StateDiff()
    assert not diff


def test_empty_states() -> None:
    assert diff_states(DesiredState(), DesiredState()) == StateDiff()


def test_version_change() -> None:
    diff = diff_states(state(m={PROD: ref(1)}), state(m={PROD: ref(2)}))
    assert diff.target_changes == (TargetChange("m", PROD, ref(1), ref(2)),)
    assert diff.tag_changes == ()
    assert diff


def test_same_version_number_with_new_content_is_a_change() -> None:
    diff = diff_states(state(m={PROD: ref(1, run_id="a")}), state(m={PROD: ref(1, run_id="b")}))
    assert diff.target_changes == (TargetChange("m", PROD, ref(1, run_id="a"), ref(1, run_id="b")),)


def test_target_emptied() -> None:
    diff = diff_states(state(m={PROD: ref(1)}), state(m={PROD: None}))
    assert diff.target_changes == (TargetChange("m", PROD, ref(1), None),)


def test_target_filled() -> None:
    diff = diff_states(state(m={PROD: None}), state(m={PROD: ref(1)}))
    assert diff.target_changes == (TargetChange("m", PROD, None, ref(1)),)


def test_none_and_missing_target_are_the_same() -> None:
    assert not diff_states(state(m={}), state(m={PROD: None}))
    assert not diff_states(DesiredState(), state(m={PROD: None}))


def test_model_added() -> None:
    diff = diff_states(
        state(a={PROD: ref(1, "a")}), state(a={PROD: ref(1, "a")}, b={PROD: ref(5, "b")})
    )
    assert diff.target_changes == (TargetChange("b", PROD, None, ref(5, "b")),)
    assert diff.tag_changes == ()


def test_model_added_with_tags_is_a_tag_change() -> None:
    new = with_tags(state(b={PROD: None}), "b", {"traffic": "x"})
    diff = diff_states(DesiredState(), new)
    assert diff.target_changes == ()
    assert diff.tag_changes == ("b",)


def test_model_removed() -> None:
    old = with_tags(state(a={PROD: ref(1, "a")}, b={PROD: ref(5, "b")}), "b", {"k": "v"})
    diff = diff_states(old, state(a={PROD: ref(1, "a")}))
    assert diff.target_changes == (TargetChange("b", PROD, ref(5, "b"), None),)
    assert diff.tag_changes == ("b",)


def test_tag_change_only() -> None:
    old = with_tags(state(m={PROD: ref(1)}), "m", {"traffic": "canary=5"})
    new = with_tags(state(m={PROD: ref(1)}), "m", {"traffic": "canary=10"})
    diff = diff_states(old, new)
    assert diff.target_changes == ()
    assert diff.tag_changes == ("m",)
    assert diff


def test_tag_added_and_removed() -> None:
    base = state(m={PROD: ref(1)})
    tagged = with_tags(base, "m", {"k": "v"})
    assert diff_states(base, tagged).tag_changes == ("m",)
    assert diff_states(tagged, base).tag_changes == ("m",)
    assert diff_states(tagged, with_tags(base, "m", {"k": "v"})) == StateDiff()


def test_notes_and_found_are_not_part_of_the_diff() -> None:
    a = DesiredState({"m": ModelState("m", True, {PROD: None}, notes={PROD: "x"})})
    b = DesiredState({"m": ModelState("m", False, {PROD: None}, notes={PROD: "y"})})
    assert diff_states(a, b) == StateDiff()


def test_ordering_is_by_model_then_target() -> None:
    old = state(zeta={PROD: ref(1, "zeta")}, alpha={STAGING: None, PROD: None, ARCHIVED: None})
    new = state(
        alpha={STAGING: ref(2, "alpha"), ARCHIVED: ref(1, "alpha"), PROD: ref(3, "alpha")},
        zeta={PROD: ref(2, "zeta")},
    )
    diff = diff_states(old, new)
    assert [(c.model, c.target.text) for c in diff.target_changes] == [
        ("alpha", "Archived"),
        ("alpha", "Production"),
        ("alpha", "Staging"),
        ("zeta", "Production"),
    ]
    # Same content in another insertion order: the same diff.
    new_reordered = state(
        zeta={PROD: ref(2, "zeta")},
        alpha={PROD: ref(3, "alpha"), ARCHIVED: ref(1, "alpha"), STAGING: ref(2, "alpha")},
    )
    assert diff_states(old, new_reordered) == diff


def test_tag_changes_are_sorted() -> None:
    old = with_tags(with_tags(state(b={}, a={}), "a", {"k": "1"}), "b", {"k": "1"})
    new = with_tags(with_tags(state(a={}, b={}), "a", {"k": "2"}), "b", {"k": "2"})
    assert diff_states(old, new).tag_changes == ("a", "b")


def test_diff_with_stage_alias_and_version_targets() -> None:
    # A model commonly has targets of several kinds (Production, @champion, 3).
    old = state(m={PROD: ref(1), CHAMP: ref(1), V3: ref(3)})
    new = state(m={PROD: ref(2), CHAMP: ref(1), V3: None})
    diff = diff_states(old, new)
    assert {(c.target, c.old, c.new) for c in diff.target_changes} == {
        (PROD, ref(1), ref(2)),
        (V3, ref(3), None),
    }
    assert diff_states(old, new) == diff  # stable


# --- properties ---------------------------------------------------------------------

_targets = st.one_of(
    st.sampled_from([PROD, STAGING, ARCHIVED]),
    st.sampled_from(["champion", "challenger"]).map(lambda a: Target(TargetKind.ALIAS, a)),
    st.integers(1, 5).map(lambda n: Target(TargetKind.VERSION, str(n))),
)
_refs = st.one_of(st.none(), st.builds(ref, st.integers(1, 5)))
_model_states = st.builds(
    lambda name, targets, tags: ModelState(name, True, targets, tags),
    st.just("placeholder"),
    st.dictionaries(_targets, _refs, max_size=4),
    st.dictionaries(st.sampled_from(["a", "b"]), st.sampled_from(["1", "2"]), max_size=2),
)
_states = st.dictionaries(st.sampled_from(["m1", "m2", "m3"]), _model_states, max_size=3).map(
    DesiredState
)


def _stage_only(desired: DesiredState) -> DesiredState:
    return DesiredState(
        {
            name: ModelState(
                name,
                ms.found,
                {t: r for t, r in ms.targets.items() if t.kind is TargetKind.STAGE},
                ms.tags,
            )
            for name, ms in desired.models.items()
        }
    )


@FAST
@given(desired=_states)
def test_diff_of_a_state_with_itself_is_empty(desired: DesiredState) -> None:
    assert diff_states(desired, desired) == StateDiff()


@FAST
@given(old=_states.map(_stage_only), new=_states.map(_stage_only))
def test_diff_lists_exactly_the_differing_targets(old: DesiredState, new: DesiredState) -> None:
    diff = diff_states(old, new)
    expected = set()
    for model in set(old.models) | set(new.models):
        targets = set(old.models[model].targets if model in old.models else {})
        targets |= set(new.models[model].targets if model in new.models else {})
        for target in targets:
            before, after = old.version_for(model, target), new.version_for(model, target)
            if before != after:
                expected.add(TargetChange(model, target, before, after))
    assert set(diff.target_changes) == expected
    assert len(diff.target_changes) == len(expected)
    keys = [(c.model, c.target) for c in diff.target_changes]
    assert keys == sorted(keys)
    assert list(diff.tag_changes) == sorted(diff.tag_changes)
    assert bool(diff) == bool(expected or diff.tag_changes)
    # Swapping sides mirrors every change.
    mirrored = diff_states(new, old)
    assert {(c.model, c.target, c.new, c.old) for c in mirrored.target_changes} == {
        (c.model, c.target, c.old, c.new) for c in diff.target_changes
    }
    assert mirrored.tag_changes == diff.tag_changes
