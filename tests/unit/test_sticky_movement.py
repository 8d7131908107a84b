"""How many sticky keys a weight change moves (tests/unit/sticky_study.py): the
router's contiguous ranges move the least possible with 2 targets and up to
(targets - 1) times more with 3 or more; weighted rendezvous hashing moves fewer."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from registry_watcher.traffic_policy import policy_from_dict
from service.traffic.router import BUCKETS, bucket, decide
from tests.unit.sticky_study import (
    contiguous,
    moved,
    rendezvous,
    total_variation,
    uniforms,
)

NAMES = ("Production", "Staging", "@champion", "@challenger")


@cache
def race(n: int) -> np.ndarray:
    return uniforms(NAMES[:n])


def test_the_study_lays_buckets_as_the_router_does() -> None:
    weights = {"Production": 30, "Staging": 25.5, "@champion": 44.5}
    p = policy_from_dict({"weights": weights, "sticky": True})
    layout = contiguous(list(weights.values()))
    for i in range(3_000):
        key = f"user-{i}"
        assert decide(p, set(p.targets()), key).target == p.targets()[layout[bucket(key)]]


@pytest.mark.parametrize("seed", range(5))
def test_two_targets_move_the_least_possible(seed: int) -> None:
    old, new = np.random.default_rng(seed).dirichlet([1, 1], size=2)
    tv = total_variation(old, new)
    assert abs(moved(contiguous(old), contiguous(new)) - tv) <= 1 / BUCKETS
    # Rendezvous too, up to the sampling noise of 10,000 buckets.
    assert abs(moved(rendezvous(old, race(2)), rendezvous(new, race(2))) - tv) <= 0.015


def test_three_targets_can_move_twice_the_least() -> None:
    old, new = (0.3, 0.3, 0.4), (0.4, 0.3, 0.3)
    assert total_variation(old, new) == pytest.approx(0.1)
    # Both range bounds shift by 0.1: Staging's keys move too, though its weight does not.
    assert moved(contiguous(old), contiguous(new)) == pytest.approx(0.2, abs=1 / BUCKETS)
    assert moved(rendezvous(old, race(3)), rendezvous(new, race(3))) < 0.15


def test_rendezvous_shares_follow_the_weights() -> None:
    weights = (0.05, 0.6, 0.35)
    counts = np.bincount(rendezvous(weights, race(3)), minlength=3) / BUCKETS
    assert counts == pytest.approx(weights, abs=0.015)
    assert 0 not in set(rendezvous((0.0, 1.0, 1.0), race(3)))


def test_small_changes_over_four_targets() -> None:
    # Bandit-like jitter (sd 3 points, floor 5 %): the figures the report states.
    rng = np.random.default_rng(0)
    tv = ranges = race_moved = 0.0
    for _ in range(100):
        old = rng.dirichlet(np.ones(4))
        new = np.clip(old + rng.normal(0, 0.03, 4), 0.05, None)
        tv += total_variation(old, new)
        ranges += moved(contiguous(old), contiguous(new))
        race_moved += moved(rendezvous(old, race(4)), rendezvous(new / new.sum(), race(4)))
    assert ranges / tv > 1.4  # measured 1.51
    assert race_moved / tv < 1.35  # measured 1.25
