"""`stageserve traffic set` arguments become the same validated policy as the API's."""

from __future__ import annotations

import pytest

from registry_watcher.targets import parse_target
from registry_watcher.traffic_policy import PolicyError
from service.cli.traffic_command import policy_from_args


def test_weights_shadow_and_sticky() -> None:
    policy = policy_from_args(["Production=90", "@canary=10"], "Staging:25", True)
    assert policy.to_dict() == {
        "weights": {"Production": 90, "@canary": 10},
        "sticky": True,
        "shadow": {"target": "Staging", "percent": 25},
    }


def test_fractional_weights() -> None:
    assert policy_from_args(["Production=0.5", "Staging=1.5"], None, False).weight(
        parse_target("Staging")
    ) == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("weights", "shadow", "problem"),
    [
        (["Production"], None, "TARGET=WEIGHT"),
        (["=5"], None, "TARGET=WEIGHT"),
        (["Production=ten"], None, "not a number"),
        (["Production=-1"], None, "Production"),
        (["Production=0"], None, "zero"),
        (["Production=1", "Production=2"], None, "twice"),
        (["Production=1"], "Staging", "TARGET:PERCENT"),
        (["Production=1"], "Staging:0", "percent"),
        (["Production=1"], "Staging:abc", "not a number"),
        (["bad target!=1"], None, "bad target!"),
    ],
)
def test_refusals_name_the_problem(weights, shadow, problem) -> None:
    with pytest.raises(PolicyError, match=problem):
        policy_from_args(weights, shadow, False)


def test_registry_uri_is_accepted_after_the_action() -> None:
    from service.cli.parser import build_parser

    args = build_parser().parse_args(
        ["traffic", "set", "m", "Production=1", "--registry-uri", "http://r", "--sticky"]
    )
    assert (args.action, args.name, args.registry_uri, args.sticky) == (
        "set",
        "m",
        "http://r",
        True,
    )
    assert build_parser().parse_args(["traffic", "show", "m"]).registry_uri is None
