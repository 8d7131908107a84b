"""service/rollouts/rollout_requests.py: the admin API's rollout bodies, read and checked
(the HTTP side: test_rollout_api.py)."""

from __future__ import annotations

import pytest

from service.rollouts.rollout_plan import RolloutPlan
from service.rollouts.rollout_requests import parse_abort, parse_approve, parse_start
from service.rollouts.tag_fields import RolloutError


def test_a_bare_start_takes_the_plans_own_defaults() -> None:
    plan = parse_start("churn", {"candidate": "staging", "shadow": None}).plan(
        "churn", 7, "p1", 1.0
    )
    default = RolloutPlan(
        id="p1", model="churn", control="Production", candidate="Staging",
        candidate_version=7, created_at=1.0,
    )  # fmt: skip
    assert plan == default


def test_partial_gates_and_shadow_keep_the_other_defaults() -> None:
    body = {"candidate": "@challenger", "gates": {"max_p99_ratio": 2}, "shadow": {"percent": 10}}
    request = parse_start("churn", body)
    assert (request.gates.max_p99_ratio, request.gates.max_error_rate_increase) == (2.0, 0.01)
    assert request.shadow is not None and request.shadow.min_agreement == 0.95


def test_approve_and_abort_bodies() -> None:
    assert parse_approve(None) is None
    assert parse_approve({"by": " ana "}) == "ana"
    assert parse_abort({"why": "freeze"}) == (None, "freeze")
    with pytest.raises(RolloutError, match="why: must be a printable text"):
        parse_abort({"why": "x" * 201})
    with pytest.raises(RolloutError, match="body: unknown key"):
        parse_approve({"who": "ana"})
