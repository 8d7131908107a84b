"""PolicyBook: which policy a model follows as tags change, and how bad tags are kept out."""

from __future__ import annotations

import json

import pytest

from registry_watcher.targets import parse_target
from registry_watcher.traffic_policy import POLICY_TAG, PolicyError, policy_from_dict
from service.traffic.policy_book import ADMIN, DEFAULT, REGISTRY, PolicyBook

PROD, STAGING = parse_target("Production"), parse_target("Staging")
SPLIT = {"weights": {"Production": 90, "Staging": 10}}


def book() -> PolicyBook:
    return PolicyBook({"m": (PROD, STAGING)})


def tags(policy: dict | str) -> dict[str, str]:
    return {POLICY_TAG: policy if isinstance(policy, str) else json.dumps(policy)}


def test_default_is_all_to_the_first_target() -> None:
    record = book().get("m")
    assert record.source == DEFAULT
    assert record.policy.shares() == {PROD: 1.0}


def test_a_tag_applies_and_the_same_tag_again_is_no_change() -> None:
    b = book()
    record, changed = b.from_tags("m", tags(SPLIT))
    assert changed and record.source == REGISTRY
    assert record.policy.weight(STAGING) == 10
    again, changed_again = b.from_tags("m", tags(SPLIT))
    assert not changed_again and again is record


@pytest.mark.parametrize(
    "bad",
    [
        "{not json",
        {"weights": {"Production": -1}},
        {"weights": {"@ghost": 1}},  # not a target this gateway serves
        {"weights": {"Production": 1}, "extra": 1},
    ],
)
def test_a_bad_tag_keeps_the_last_good_policy(bad) -> None:
    b = book()
    good, _ = b.from_tags("m", tags(SPLIT))
    record, changed = b.from_tags("m", tags(bad))
    assert not changed
    assert record.policy == good.policy and record.source == REGISTRY
    assert record.error and POLICY_TAG in record.error
    fixed, changed = b.from_tags("m", tags({"weights": {"Staging": 1}}))
    assert changed and fixed.error is None and fixed.policy.shares() == {STAGING: 1.0}


def test_removing_the_tag_goes_back_to_the_default() -> None:
    b = book()
    b.from_tags("m", tags(SPLIT))
    record, changed = b.from_tags("m", {})
    assert changed and record.source == DEFAULT
    assert b.from_tags("m", {}) == (record, False)


def test_admin_write_is_confirmed_when_the_registry_says_the_same() -> None:
    b = book()
    policy = policy_from_dict(SPLIT)
    assert b.set("m", policy, ADMIN).source == ADMIN
    record, changed = b.from_tags("m", {POLICY_TAG: policy.to_json()})
    assert not changed and record.source == REGISTRY and record.policy == policy


def test_set_refuses_targets_not_served() -> None:
    with pytest.raises(PolicyError, match="@ghost"):
        book().set("m", policy_from_dict({"weights": {"@ghost": 1}}), ADMIN)


def test_reset() -> None:
    b = book()
    b.set("m", policy_from_dict(SPLIT), ADMIN)
    assert b.reset("m").source == DEFAULT
    assert b.policy("m").shares() == {PROD: 1.0}
