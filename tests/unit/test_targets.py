"""registry_watcher.targets: parsing what users type into Target values."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from registry_watcher.targets import (
    DEFAULT_TARGETS,
    KNOWN_STAGES,
    InvalidTarget,
    Target,
    TargetKind,
    parse_target,
    parse_targets,
)

FAST = settings(max_examples=200, deadline=None, database=None, derandomize=True)


# --- stages -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Production", "Production"),
        ("production", "Production"),
        ("PRODUCTION", "Production"),
        ("pRoDuCtIoN", "Production"),
        ("staging", "Staging"),
        ("STAGING", "Staging"),
        ("archived", "Archived"),
        ("none", "None"),
        ("NONE", "None"),
    ],
)
def test_known_stages_are_case_insensitive_and_canonicalised(text: str, expected: str) -> None:
    target = parse_target(text)
    assert target == Target(TargetKind.STAGE, expected)
    assert target.text == expected


@pytest.mark.parametrize("stage", KNOWN_STAGES)
def test_every_known_stage_parses_to_itself(stage: str) -> None:
    assert parse_target(stage) == Target(TargetKind.STAGE, stage)


@pytest.mark.parametrize("text", ["Canary", "canary", "shadow_2", "blue-green", "x", "1abc", "v2"])
def test_custom_stage_names_are_kept_as_written(text: str) -> None:
    target = parse_target(text)
    assert target.kind is TargetKind.STAGE
    assert target.value == text
    assert target.text == text


def test_surrounding_whitespace_is_ignored() -> None:
    assert parse_target("  Production\t") == Target(TargetKind.STAGE, "Production")
    assert parse_target("\n@champion ") == Target(TargetKind.ALIAS, "champion")
    assert parse_target(" 3 ") == Target(TargetKind.VERSION, "3")


# --- aliases ------------------------------------------------------------------------


@pytest.mark.parametrize("alias", ["champion", "Champion", "c", "a_b", "a-b", "v1", "123", "_-_"])
def test_alias(alias: str) -> None:
    target = parse_target("@" + alias)
    assert target == Target(TargetKind.ALIAS, alias)
    assert target.value == alias  # stored without the '@'
    assert target.text == "@" + alias


def test_alias_case_is_preserved() -> None:
    assert parse_target("@Champion").value == "Champion"
    assert parse_target("@Champion") != parse_target("@champion")


def test_alias_of_digits_is_an_alias_not_a_version() -> None:
    assert parse_target("@3").kind is TargetKind.ALIAS


@pytest.mark.parametrize(
    "text", ["@", "@ ", "@@champion", "@champ ion", "@champ.ion", "@a/b", "@é", "@a:b", "@a\nb"]
)
def test_invalid_alias(text: str) -> None:
    with pytest.raises(InvalidTarget, match="alias"):
        parse_target(text)


# --- versions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", "1"), ("3", "3"), ("10", "10"), ("007", "7"), ("0001", "1"), ("12345678901234", None)],
)
def test_version(text: str, value: str | None) -> None:
    target = parse_target(text)
    assert target.kind is TargetKind.VERSION
    assert target.value == (value or text)
    assert target.text == (value or text)


def test_leading_zeros_make_the_same_target() -> None:
    assert parse_target("03") == parse_target("3")
    assert hash(parse_target("03")) == hash(parse_target("3"))


@pytest.mark.parametrize("text", ["0", "00", "000"])
def test_version_zero_is_rejected(text: str) -> None:
    with pytest.raises(InvalidTarget, match="versions start at 1"):
        parse_target(text)


@pytest.mark.parametrize("text", ["²", "¹²"])
def test_non_ascii_digits_raise_invalid_target(text: str) -> None:
    # str.isdigit() is True for superscripts but int() rejects them: the error must
    # still be an InvalidTarget (callers catch exactly that to answer 400).
    with pytest.raises(InvalidTarget):
        parse_target(text)


# --- invalid input ------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", " ", "\t\n", None])
def test_empty_is_rejected(text: str | None) -> None:
    with pytest.raises(InvalidTarget, match="empty target"):
        parse_target(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    ["Prod uction", "prod/uction", "models:/m/1", "1.5", "+1", "v 2", "Production!", "é", "a\nb"],
)
def test_invalid_characters_are_rejected(text: str) -> None:
    with pytest.raises(InvalidTarget, match="invalid target"):
        parse_target(text)


def test_invalid_target_is_a_value_error() -> None:
    assert issubclass(InvalidTarget, ValueError)


# --- Target -------------------------------------------------------------------------


def test_target_text_and_str() -> None:
    assert Target(TargetKind.STAGE, "Production").text == "Production"
    assert Target(TargetKind.ALIAS, "champion").text == "@champion"
    assert Target(TargetKind.VERSION, "4").text == "4"
    assert str(Target(TargetKind.ALIAS, "champion")) == "@champion"


def test_targets_are_hashable_and_compared_by_content() -> None:
    a = Target(TargetKind.STAGE, "Production")
    b = Target(TargetKind.STAGE, "Production")
    assert a == b
    assert {a: 1}[b] == 1
    assert Target(TargetKind.STAGE, "3") != Target(TargetKind.VERSION, "3")


def test_targets_of_the_same_kind_sort_by_value() -> None:
    targets = [parse_target("Staging"), parse_target("Production"), parse_target("Archived")]
    assert [t.text for t in sorted(targets)] == ["Archived", "Production", "Staging"]


def test_targets_of_different_kinds_are_orderable() -> None:
    # Target is declared order=True and diff_states sorts a model's targets, which
    # routinely mixes kinds (STAGESERVE_TARGETS=Production,@champion,3).
    targets = [parse_target("Production"), parse_target("@champion"), parse_target("3")]
    ordered = sorted(targets)
    assert sorted(ordered) == ordered
    assert set(ordered) == set(targets)


# --- parse_targets ------------------------------------------------------------------


def test_parse_targets_keeps_order() -> None:
    targets = parse_targets(["Staging", "@champion", "3", "Production"])
    assert isinstance(targets, tuple)
    assert [t.text for t in targets] == ["Staging", "@champion", "3", "Production"]


def test_parse_targets_accepts_a_tuple() -> None:
    assert parse_targets(("production",)) == (Target(TargetKind.STAGE, "Production"),)


@pytest.mark.parametrize(
    ("texts", "duplicate"),
    [
        (["Production", "Production"], "Production"),
        (["Production", "production"], "Production"),
        (["Staging", "Production", "STAGING"], "Staging"),
        (["@champion", "@champion"], "@champion"),
        (["3", "003"], "3"),
    ],
)
def test_parse_targets_rejects_duplicates(texts: list[str], duplicate: str) -> None:
    with pytest.raises(InvalidTarget, match="listed twice") as info:
        parse_targets(texts)
    assert repr(duplicate) in str(info.value)


def test_parse_targets_same_text_different_kind_is_not_a_duplicate() -> None:
    assert len(parse_targets(["3", "@3"])) == 2


@pytest.mark.parametrize("texts", [[], ()])
def test_parse_targets_rejects_empty(texts: list[str]) -> None:
    with pytest.raises(InvalidTarget, match="at least one target"):
        parse_targets(texts)


def test_parse_targets_propagates_invalid_entries() -> None:
    with pytest.raises(InvalidTarget):
        parse_targets(["Production", "no good"])


def test_default_targets() -> None:
    assert parse_targets(["Production", "Staging"]) == DEFAULT_TARGETS


# --- properties ---------------------------------------------------------------------

_WORD = st.from_regex(r"\A[A-Za-z0-9_\-]{1,20}\Z")

_texts = st.one_of(
    st.sampled_from(KNOWN_STAGES).flatmap(
        lambda s: st.lists(st.booleans(), min_size=len(s), max_size=len(s)).map(
            lambda flips: "".join(
                c.upper() if f else c.lower() for c, f in zip(s, flips, strict=True)
            )
        )
    ),
    _WORD.filter(lambda w: not w.isdigit()),
    _WORD.map(lambda w: "@" + w),
    st.integers(min_value=1, max_value=10**12).flatmap(
        lambda n: st.integers(0, 3).map(lambda zeros: "0" * zeros + str(n))
    ),
)


@FAST
@given(text=_texts, pad_left=st.sampled_from(["", " ", "\t"]), pad_right=st.sampled_from(["", " "]))
def test_round_trip_through_text(text: str, pad_left: str, pad_right: str) -> None:
    target = parse_target(pad_left + text + pad_right)
    assert parse_target(target.text) == target
    assert parse_target(target.text).text == target.text


@FAST
@given(text=_texts)
def test_text_is_canonical(text: str) -> None:
    target = parse_target(text)
    if target.kind is TargetKind.VERSION:
        assert target.text == str(int(text))
    elif target.kind is TargetKind.ALIAS:
        assert target.text == text
    elif text.lower() in {s.lower() for s in KNOWN_STAGES}:
        assert target.text in KNOWN_STAGES
    else:
        assert target.text == text


@FAST
@given(text=st.text(max_size=12))
@example(text="²")
@example(text="@")
@example(text="0")
def test_parse_target_only_raises_invalid_target(text: str) -> None:
    try:
        target = parse_target(text)
    except InvalidTarget:
        return
    assert parse_target(target.text) == target
