"""registry_watcher.traffic_policy: the traffic policy read from a registered-model tag."""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry_watcher.targets import KNOWN_STAGES, Target, TargetKind, parse_target
from registry_watcher.traffic_policy import (
    POLICY_TAG,
    PolicyError,
    Shadow,
    TrafficPolicy,
    check_targets,
    default_policy,
    parse_policy,
    policy_from_dict,
)

FAST = settings(max_examples=200, deadline=None, database=None, derandomize=True)

PROD = parse_target("Production")
STAGING = parse_target("Staging")
CHAMP = parse_target("@champion")
V3 = parse_target("3")


def error(obj: object) -> str:
    with pytest.raises(PolicyError) as info:
        policy_from_dict(obj)
    return str(info.value)


def test_tag_name() -> None:
    assert POLICY_TAG == "stageserve.traffic"


def test_policy_error_is_a_value_error() -> None:
    assert issubclass(PolicyError, ValueError)


# --- a valid policy -----------------------------------------------------------------


def test_full_policy() -> None:
    policy = policy_from_dict(
        {
            "weights": {"Production": 90, "Staging": 10},
            "sticky": True,
            "shadow": {"target": "@champion", "percent": 25},
        }
    )
    assert policy.weights == ((PROD, 90.0), (STAGING, 10.0))
    assert policy.sticky is True
    assert policy.shadow == Shadow(CHAMP, 25.0)


def test_defaults_no_shadow_not_sticky() -> None:
    policy = policy_from_dict({"weights": {"Production": 1}})
    assert policy == TrafficPolicy(weights=((PROD, 1.0),))
    assert policy.shadow is None
    assert policy.sticky is False


def test_null_shadow_means_no_shadow() -> None:
    assert policy_from_dict({"weights": {"Production": 1}, "shadow": None}).shadow is None


def test_weights_keep_the_order_written() -> None:
    policy = policy_from_dict({"weights": {"3": 1, "Staging": 2, "@champion": 3, "Production": 4}})
    assert policy.targets() == (V3, STAGING, CHAMP, PROD)


def test_target_spelling_is_canonicalised() -> None:
    policy = policy_from_dict(
        {
            "weights": {"production": 90, " STAGING ": 10, "007": 1},
            "shadow": {"target": "archived", "percent": 5},
        }
    )
    assert policy.targets() == (PROD, STAGING, parse_target("7"))
    assert policy.shadow == Shadow(Target(TargetKind.STAGE, "Archived"), 5.0)
    assert list(policy.to_dict()["weights"]) == ["Production", "Staging", "7"]
    assert policy.to_dict()["shadow"]["target"] == "Archived"


def test_weight_zero_and_float_weights_are_allowed() -> None:
    policy = policy_from_dict({"weights": {"Production": 0.5, "Staging": 0}})
    assert policy.weights == ((PROD, 0.5), (STAGING, 0.0))


def test_weights_are_stored_as_floats() -> None:
    policy = policy_from_dict({"weights": {"Production": 90}})
    assert type(policy.weights[0][1]) is float


@pytest.mark.parametrize("percent", [100, 0.01, 50.5, 1e-9])
def test_shadow_percent_bounds_accepted(percent: float) -> None:
    policy = policy_from_dict(
        {"weights": {"Production": 1}, "shadow": {"target": "Staging", "percent": percent}}
    )
    assert policy.shadow == Shadow(STAGING, float(percent))


def test_exactly_32_targets_accepted() -> None:
    policy = policy_from_dict({"weights": {str(v): 1 for v in range(1, 33)}})
    assert len(policy.targets()) == 32


# --- validation: top level ----------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "shown"), [([], "[]"), ("x", '"x"'), (None, "null"), (3, "3"), (True, "true")]
)
def test_policy_must_be_an_object(obj: object, shown: str) -> None:
    assert error(obj) == f"policy: must be a JSON object, got {shown}"


def test_unknown_top_level_key_is_rejected() -> None:
    message = error({"weights": {"Production": 1}, "stiky": True})
    assert message == "policy: unknown key 'stiky' (allowed: shadow, sticky, weights)"


def test_several_unknown_keys_are_all_named() -> None:
    message = error({"wieghts": {"Production": 1}, "mirror": {}})
    assert message.startswith("policy: unknown keys 'wieghts', 'mirror'")


def test_weights_required() -> None:
    assert error({"sticky": True}).startswith("weights: required")


# --- validation: weights ------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "shown"),
    [([], "[]"), (["Production"], '["Production"]'), (90, "90"), (None, "null")],
)
def test_weights_must_be_an_object(weights: object, shown: str) -> None:
    assert error({"weights": weights}) == (
        f"weights: must be an object of target -> weight, got {shown}"
    )


def test_weights_must_not_be_empty() -> None:
    assert error({"weights": {}}) == "weights: must name at least one target"


def test_more_than_32_targets_rejected() -> None:
    assert error({"weights": {str(v): 1 for v in range(1, 34)}}) == (
        "weights: at most 32 targets, got 33"
    )


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "empty target"),
        ("prod uction", "invalid target 'prod uction'"),
        ("@", "invalid alias '@'"),
        ("0", "versions start at 1"),
    ],
)
def test_invalid_target_key(key: str, problem: str) -> None:
    message = error({"weights": {"Production": 1, key: 1}})
    assert message.startswith(f"weights: key {key!r}: ")
    assert problem in message


def test_non_string_key_rejected() -> None:
    assert error({"weights": {3: 1}}) == "weights: key 3 is not a target text"


@pytest.mark.parametrize(
    ("first", "second", "canonical"),
    [
        ("production", "Production", "Production"),
        ("3", "003", "3"),
        ("STAGING", "staging", "Staging"),
    ],
)
def test_two_spellings_of_one_target_rejected(first: str, second: str, canonical: str) -> None:
    message = error({"weights": {first: 50, second: 50}})
    assert message == f"weights: keys {first!r} and {second!r} are the same target {canonical}"


def test_negative_weight_message_is_exact() -> None:
    assert error({"weights": {"Production": 90, "Staging": -5}}) == (
        "weights.Staging: must be a number >= 0, got -5"
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [(True, "true"), (False, "false"), ("10", '"10"'), (None, "null"), ([10], "[10]"), ({}, "{}")],
)
def test_weight_must_be_a_number_not_bool_or_string(value: object, shown: str) -> None:
    assert error({"weights": {"Production": value}}) == (
        f"weights.Production: must be a number, got {shown}"
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [(math.inf, "Infinity"), (-math.inf, "-Infinity"), (math.nan, "NaN"), (10**400, None)],
)
def test_weight_must_be_finite(value: float, shown: str | None) -> None:
    message = error({"weights": {"Production": value}})
    assert message.startswith("weights.Production: must be a finite number, got ")
    if shown is not None:
        assert message.endswith(f"got {shown}")


def test_all_weights_zero_rejected() -> None:
    assert error({"weights": {"Production": 0, "Staging": 0.0}}) == (
        "weights: all weights are zero; at least one must be > 0"
    )


def test_weights_whose_sum_overflows_rejected() -> None:
    message = error({"weights": {"Production": 1e308, "Staging": 1e308}})
    assert message.startswith("weights: the weights are too large to add up")


# --- validation: sticky -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"), [(1, "1"), (0, "0"), ("true", '"true"'), (None, "null")]
)
def test_sticky_must_be_a_bool(value: object, shown: str) -> None:
    assert error({"weights": {"Production": 1}, "sticky": value}) == (
        f"sticky: must be true or false, got {shown}"
    )


# --- validation: shadow -------------------------------------------------------------


def shadow_error(shadow: object) -> str:
    return error({"weights": {"Production": 1}, "shadow": shadow})


@pytest.mark.parametrize(("value", "shown"), [("Staging", '"Staging"'), ([], "[]"), (25, "25")])
def test_shadow_must_be_an_object_or_null(value: object, shown: str) -> None:
    assert shadow_error(value) == (
        f'shadow: must be null or an object {{"target": ..., "percent": ...}}, got {shown}'
    )


def test_shadow_unknown_key_rejected() -> None:
    assert shadow_error({"target": "Staging", "percent": 5, "pct": 5}) == (
        "shadow: unknown key 'pct' (allowed: percent, target)"
    )


@pytest.mark.parametrize("missing", ["target", "percent"])
def test_shadow_keys_required(missing: str) -> None:
    shadow = {"target": "Staging", "percent": 5}
    del shadow[missing]
    assert shadow_error(shadow) == f"shadow.{missing}: required"


def test_shadow_target_must_be_a_string() -> None:
    assert shadow_error({"target": 3, "percent": 5}) == (
        "shadow.target: must be a target text (a string), got 3"
    )


def test_shadow_target_must_be_valid() -> None:
    message = shadow_error({"target": "@no good", "percent": 5})
    assert message.startswith("shadow.target: invalid alias '@no good'")


@pytest.mark.parametrize(("value", "shown"), [(True, "true"), ("25", '"25"'), (None, "null")])
def test_shadow_percent_must_be_a_number(value: object, shown: str) -> None:
    assert shadow_error({"target": "Staging", "percent": value}) == (
        f"shadow.percent: must be a number, got {shown}"
    )


@pytest.mark.parametrize(("value", "shown"), [(0, "0"), (-1, "-1"), (100.5, "100.5"), (101, "101")])
def test_shadow_percent_range(value: float, shown: str) -> None:
    assert shadow_error({"target": "Staging", "percent": value}) == (
        f"shadow.percent: must be > 0 and <= 100, got {shown}"
    )


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_shadow_percent_must_be_finite(value: float) -> None:
    assert shadow_error({"target": "Staging", "percent": value}).startswith(
        "shadow.percent: must be a finite number, got "
    )


# --- parse_policy -------------------------------------------------------------------


def test_parse_policy() -> None:
    policy = parse_policy('{"weights": {"Production": 70, "@champion": 30}, "sticky": true}')
    assert policy == TrafficPolicy(weights=((PROD, 70.0), (CHAMP, 30.0)), sticky=True)


@pytest.mark.parametrize("text", ["", "{", "weights", '{"weights": {"Production": 1},}', "[1"])
def test_invalid_json_is_a_policy_error(text: str) -> None:
    with pytest.raises(PolicyError, match=r"^policy: not valid JSON \("):
        parse_policy(text)


def test_deeply_nested_json_is_a_policy_error() -> None:
    with pytest.raises(PolicyError):
        parse_policy("[" * 100_000 + "]" * 100_000)


def test_json_infinity_is_rejected_as_not_finite() -> None:
    # Python's json accepts NaN / Infinity / 1e999; they must not become weights.
    for literal in ("Infinity", "NaN", "1e999"):
        with pytest.raises(PolicyError, match=r"^weights\.Production: must be a finite number"):
            parse_policy('{"weights": {"Production": ' + literal + "}}")


def test_parse_policy_validates_content() -> None:
    with pytest.raises(PolicyError, match=r"^weights\.Staging: must be a number >= 0, got -5$"):
        parse_policy('{"weights": {"Production": 90, "Staging": -5}}')


# --- to_dict / to_json --------------------------------------------------------------


def test_to_dict_is_canonical() -> None:
    policy = policy_from_dict(
        {
            "shadow": {"percent": 25.0, "target": "staging"},
            "weights": {"production": 90.0, "Staging": 10.5},
            "sticky": True,
        }
    )
    assert policy.to_dict() == {
        "weights": {"Production": 90, "Staging": 10.5},
        "sticky": True,
        "shadow": {"target": "Staging", "percent": 25},
    }
    assert type(policy.to_dict()["weights"]["Production"]) is int
    assert type(policy.to_dict()["shadow"]["percent"]) is int


def test_to_dict_without_shadow_has_no_shadow_key() -> None:
    assert policy_from_dict({"weights": {"Production": 1}}).to_dict() == {
        "weights": {"Production": 1},
        "sticky": False,
    }


def test_to_json_is_compact_and_exact() -> None:
    policy = policy_from_dict(
        {"weights": {"Production": 90, "Staging": 10}, "shadow": {"target": "@c", "percent": 2.5}}
    )
    assert policy.to_json() == (
        '{"weights":{"Production":90,"Staging":10},"sticky":false,'
        '"shadow":{"target":"@c","percent":2.5}}'
    )


def test_equal_policies_give_equal_json() -> None:
    a = parse_policy('{"weights": {"production": 90.0, "STAGING": 10}, "sticky": false}')
    b = parse_policy('{"sticky": false, "weights": {"Production": 90, "Staging": 10.0}}')
    c = TrafficPolicy(weights=((PROD, 90), (STAGING, 10)))  # ints, built directly
    assert a == b == c
    assert a.to_json() == b.to_json() == c.to_json()


def test_weight_order_is_part_of_the_policy() -> None:
    a = parse_policy('{"weights": {"Production": 90, "Staging": 10}}')
    b = parse_policy('{"weights": {"Staging": 10, "Production": 90}}')
    assert a != b  # order decides the sticky layout
    assert a.to_json() != b.to_json()


def test_round_trips() -> None:
    policy = TrafficPolicy(
        weights=((PROD, 60.0), (STAGING, 0.0), (CHAMP, 12.25), (V3, 1e-3)),
        shadow=Shadow(STAGING, 33.3),
        sticky=True,
    )
    assert policy_from_dict(policy.to_dict()) == policy
    assert parse_policy(policy.to_json()) == policy
    assert parse_policy(policy.to_json()).to_json() == policy.to_json()


# --- accessors ----------------------------------------------------------------------


def test_targets_weight_and_shares() -> None:
    policy = parse_policy('{"weights": {"Production": 60, "Staging": 30, "@champion": 10, "3": 0}}')
    assert policy.targets() == (PROD, STAGING, CHAMP, V3)
    assert policy.weight(STAGING) == 30.0
    assert policy.weight(V3) == 0.0
    assert policy.weight(parse_target("@nobody")) == 0.0
    shares = policy.shares()
    assert list(shares) == [PROD, STAGING, CHAMP, V3]
    assert shares == pytest.approx({PROD: 0.6, STAGING: 0.3, CHAMP: 0.1, V3: 0.0})


def test_shares_normalise_arbitrary_scales() -> None:
    assert parse_policy('{"weights": {"Production": 3, "Staging": 1}}').shares() == {
        PROD: 0.75,
        STAGING: 0.25,
    }
    assert parse_policy('{"weights": {"Production": 0.003}}').shares() == {PROD: 1.0}


def test_default_policy() -> None:
    policy = default_policy(CHAMP)
    assert policy == TrafficPolicy(weights=((CHAMP, 100.0),))
    assert policy.shadow is None
    assert policy.sticky is False
    assert policy.shares() == {CHAMP: 1.0}
    assert parse_policy(policy.to_json()) == policy


# --- check_targets ------------------------------------------------------------------


def test_check_targets_accepts_known_targets() -> None:
    policy = parse_policy(
        '{"weights": {"Production": 9, "Staging": 1},'
        ' "shadow": {"target": "@champion", "percent": 5}}'
    )
    check_targets(policy, (PROD, STAGING, CHAMP))  # no exception


def test_check_targets_names_every_unknown_target_and_the_allowed_ones() -> None:
    policy = parse_policy(
        '{"weights": {"Production": 8, "Canary": 1, "7": 1},'
        ' "shadow": {"target": "@challenger", "percent": 5}}'
    )
    with pytest.raises(PolicyError) as info:
        check_targets(policy, (PROD, STAGING))
    assert str(info.value) == (
        "traffic policy names targets this model does not serve: Canary (weights), 7 (weights), "
        "@challenger (shadow). Targets of this model: Production, Staging."
    )


def test_check_targets_names_a_target_in_weights_and_shadow_once() -> None:
    policy = parse_policy(
        '{"weights": {"Production": 9, "Canary": 1}, "shadow": {"target": "Canary", "percent": 5}}'
    )
    with pytest.raises(PolicyError, match=r"serve: Canary \(weights, shadow\)\. Targets"):
        check_targets(policy, (PROD,))


def test_check_targets_catches_an_unknown_shadow_alone() -> None:
    policy = parse_policy(
        '{"weights": {"Production": 1}, "shadow": {"target": "Staging", "percent": 5}}'
    )
    with pytest.raises(PolicyError, match=r"serve: Staging \(shadow\)\."):
        check_targets(policy, (PROD,))


# --- properties ---------------------------------------------------------------------

_ALIAS_CHARS = "abcxyzABCXYZ0189_-"
_target_texts = st.one_of(
    st.sampled_from([*KNOWN_STAGES, *(s.lower() for s in KNOWN_STAGES), "Canary", "blue-green"]),
    st.text(_ALIAS_CHARS, min_size=1, max_size=12).map(lambda a: "@" + a),
    st.integers(min_value=1, max_value=10**9).map(str),
)
_weight_values = st.one_of(
    st.integers(min_value=0, max_value=10**6),
    st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False),
)


@st.composite
def weight_dicts(draw: st.DrawFn) -> dict[str, float]:
    """Valid raw weights: distinct targets (after canonicalisation), some weight > 0."""
    texts = draw(st.lists(_target_texts, min_size=1, max_size=8, unique_by=parse_target))
    values = draw(st.lists(_weight_values, min_size=len(texts), max_size=len(texts)))
    if not any(v > 0 for v in values):
        values[draw(st.integers(0, len(values) - 1))] = draw(st.integers(1, 100))
    return dict(zip(texts, values, strict=True))


_shadows = st.none() | st.fixed_dictionaries(
    {
        "target": _target_texts,
        "percent": st.floats(min_value=0, max_value=100, exclude_min=True) | st.integers(1, 100),
    }
)


@FAST
@given(weights=weight_dicts(), sticky=st.booleans(), shadow=_shadows)
def test_property_round_trip(weights: dict[str, float], sticky: bool, shadow: dict | None) -> None:
    policy = policy_from_dict({"weights": weights, "sticky": sticky, "shadow": shadow})
    assert policy.targets() == tuple(parse_target(t) for t in weights)
    assert policy_from_dict(policy.to_dict()) == policy
    assert parse_policy(policy.to_json()) == policy
    assert parse_policy(policy.to_json()).to_json() == policy.to_json()
    assert json.loads(policy.to_json()) == policy.to_dict()


@FAST
@given(weights=weight_dicts())
def test_property_shares_sum_to_one(weights: dict[str, float]) -> None:
    policy = policy_from_dict({"weights": weights})
    shares = policy.shares()
    assert abs(sum(shares.values()) - 1.0) <= 1e-9
    assert all(0.0 <= s <= 1.0 for s in shares.values())
    for target, share in shares.items():
        if policy.weight(target) == 0.0:
            assert share == 0.0


@FAST
@given(weights=weight_dicts(), bad=st.sampled_from([-1, -0.5, True, "1", None, math.nan]))
def test_property_one_bad_weight_spoils_the_policy(weights: dict[str, float], bad: object) -> None:
    key = next(iter(weights))
    with pytest.raises(PolicyError, match=rf"^weights\.{re.escape(key)}: must be"):
        policy_from_dict({"weights": {**weights, key: bad}})
