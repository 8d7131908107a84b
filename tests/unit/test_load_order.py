"""service.lifecycle.load_order: the order in which the pool considers pending versions."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from registry_watcher.state import VersionRef
from service.lifecycle.load_order import RequiredFirst

FAST = settings(max_examples=300, deadline=None, database=None, derandomize=True)


@dataclass(frozen=True)
class Want:
    ref: VersionRef
    required: bool


def want(model: str, version: int, required: bool) -> Want:
    return Want(VersionRef(model, version, f"s3://b/{model}/{version}", None), required)


wants = st.lists(
    st.builds(
        want,
        st.sampled_from(["a", "b", "c", "zeta"]),
        st.integers(1, 5),
        st.booleans(),
    ),
    max_size=12,
)


def test_required_first_then_by_model() -> None:
    optional_a = want("a", 1, False)
    required_b = want("b", 1, True)
    required_a = want("a", 2, True)
    optional_c = want("c", 1, False)
    assert RequiredFirst().order([optional_c, optional_a, required_b, required_a]) == [
        required_a,
        required_b,
        optional_a,
        optional_c,
    ]


def test_nothing_to_order() -> None:
    assert RequiredFirst().order([]) == []


@FAST
@given(wants)
def test_the_order_is_a_permutation(items: list[Want]) -> None:
    ordered = RequiredFirst().order(items)
    assert sorted(ordered, key=repr) == sorted(items, key=repr)


@FAST
@given(wants)
def test_no_optional_version_comes_before_a_required_one(items: list[Want]) -> None:
    flags = [w.required for w in RequiredFirst().order(items)]
    assert flags == sorted(flags, reverse=True)


@FAST
@given(wants)
def test_within_each_kind_models_are_in_name_order_and_ties_keep_theirs(
    items: list[Want],
) -> None:
    ordered = RequiredFirst().order(items)
    for required in (True, False):
        kind = [w for w in ordered if w.required is required]
        assert [w.ref.model for w in kind] == sorted(w.ref.model for w in kind)
        for model in {w.ref.model for w in kind}:
            came_in = [w for w in items if w.required is required and w.ref.model == model]
            assert [w for w in kind if w.ref.model == model] == came_in


def test_accepts_any_iterable() -> None:
    items = [want("b", 1, False), want("a", 1, False)]
    assert RequiredFirst().order(iter(items)) == [items[1], items[0]]
