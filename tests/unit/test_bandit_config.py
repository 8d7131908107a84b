"""The stageserve.bandit tag: defaults, canonical arms, the codec's round trip, and
refusals that name the field."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.rollouts.bandit_config import (
    BanditPlan,
    BanditTagError,
    decode_bandit,
    encode_bandit,
    new_bandit,
)

FAST = settings(max_examples=80, deadline=None, database=None, derandomize=True)
MINIMAL = {"arms": ["Production", "Staging"], "started_at": 1000, "id": "abc"}


def test_defaults_are_the_measured_recommendation() -> None:
    plan = decode_bandit(json.dumps(MINIMAL))
    assert (plan.floor, plan.interval_s, plan.min_rewards, plan.min_change, plan.sticky) == (
        0.05,
        30.0,
        100,
        0.01,
        True,
    )
    weighting = plan.weighting()
    assert (weighting.floor, weighting.min_rewards, weighting.min_change) == (0.05, 100, 0.01)


def test_encoded_text_is_compact_and_in_the_documented_order() -> None:
    plan = BanditPlan(arms=("production", "@challenger"), started_at=1764460800.5, id="3f2a")
    assert encode_bandit(plan) == (
        '{"arms":["Production","@challenger"],"floor":0.05,"interval_s":30,"min_rewards":100,'
        '"min_change":0.01,"sticky":true,"started_at":1764460800.5,"id":"3f2a"}'
    )


def test_new_bandit_has_a_fresh_id_and_starts_now() -> None:
    one, two = new_bandit(["Production", "Staging"], 5.0), new_bandit(["Production", "2"], 5.0)
    assert one.id != two.id and one.started_at == 5.0 and two.arms == ("Production", "2")


@given(
    arms=st.lists(
        st.sampled_from(["Production", "Staging", "@champion", "@b", "3", "12"]),
        min_size=2,
        max_size=6,
        unique=True,
    ),
    floor=st.floats(0, 0.16),
    interval=st.floats(0.01, 1e6),
    min_rewards=st.integers(0, 10**6),
    min_change=st.floats(0, 1),
    sticky=st.booleans(),
    started=st.floats(0, 4e9),
)
@FAST
def test_round_trip(arms, floor, interval, min_rewards, min_change, sticky, started) -> None:
    plan = BanditPlan(
        tuple(arms), started, "id-1", floor, interval, min_rewards, min_change, sticky
    )
    assert decode_bandit(encode_bandit(plan)) == plan


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"arms": ["Production"]}, "arms: a bandit needs 2"),
        ({"arms": "Production"}, "arms: must be an array"),
        ({"arms": ["Production", 3]}, r"arms\[1\]: must be a target text"),
        ({"arms": ["Production", "bad arm"]}, r"arms\[1\]: invalid target"),
        ({"arms": ["Production", "production"]}, r"arms\[1\]: Production is named twice"),
        ({"floor": 0.6}, "floor: 0.6 for 2 arms"),
        ({"floor": -0.1}, "floor: must be in"),
        ({"floor": True}, "floor: must be a number"),
        ({"interval_s": 0}, "interval_s: must be > 0"),
        ({"min_rewards": 1.5}, "min_rewards: must be a whole number"),
        ({"min_rewards": -1}, "min_rewards: must be a whole number"),
        ({"min_change": 2}, "min_change: must be in"),
        ({"sticky": "yes"}, "sticky: must be true or false"),
        ({"started_at": "now"}, "started_at: must be a number"),
        ({"started_at": -1}, "started_at: must be epoch seconds"),
        ({"id": ""}, "id: must be a non-empty string"),
        ({"id": "x" * 65}, "id: must be 1 to 64"),
        ({"weights": {}}, "unknown key"),
    ],
)
def test_refusals_name_the_field(change: dict, field: str) -> None:
    with pytest.raises(BanditTagError, match=field):
        decode_bandit(json.dumps({**MINIMAL, **change}))


@pytest.mark.parametrize("missing", ["arms", "started_at", "id"])
def test_required_fields(missing: str) -> None:
    obj = {k: v for k, v in MINIMAL.items() if k != missing}
    with pytest.raises(BanditTagError, match=f"{missing}: required"):
        decode_bandit(json.dumps(obj))


@pytest.mark.parametrize("text", ["", "{", "[]", "null", '"x"'])
def test_not_an_object(text: str) -> None:
    with pytest.raises(BanditTagError, match=r"stageserve\.bandit"):
        decode_bandit(text)


def test_constructor_refuses_like_the_decoder() -> None:
    with pytest.raises(BanditTagError, match=r"floor: 0\.4 for 3 arms"):
        new_bandit(["Production", "Staging", "@c"], 0.0, floor=0.4)
