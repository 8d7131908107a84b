"""Thompson-sampling weights: P(best) against scipy and closed forms, the floor, the
rounding, the hysteresis, and invariants (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats
from scipy.special import betaln

from service.experiments.reward_stats import RewardSummary
from service.rollouts.posteriors import BetaPosterior, NormalPosterior, posteriors
from service.rollouts.thompson import (
    BanditConfig,
    BanditConfigError,
    best_probabilities,
    should_rewrite,
    thompson_weights,
)

FAST = settings(max_examples=60, deadline=None, database=None, derandomize=True)
CONFIG = BanditConfig()


def binary(successes: int, failures: int) -> RewardSummary:
    return RewardSummary.from_values([1.0] * successes + [0.0] * failures)


def beta_b_beats_a(a: tuple[int, int], b: tuple[int, int]) -> float:
    """P(p_B > p_A), Beta(a) vs Beta(b) with whole parameters: the closed-form sum."""
    (aa, ba), (ab, bb) = a, b
    terms = [
        math.exp(betaln(aa + i, ba + bb) - math.log(bb + i) - betaln(1 + i, bb) - betaln(aa, ba))
        for i in range(ab)
    ]
    return math.fsum(terms)


def scipy_best(dists: list, i: int) -> float:
    """∫ f_i Π F_j with scipy.stats and quad over the whole line (the reference)."""
    others = [d for j, d in enumerate(dists) if j != i]
    low, high = dists[i].ppf(1e-13), dists[i].isf(1e-13)
    value, _ = integrate.quad(
        lambda x: dists[i].pdf(x) * np.prod([d.cdf(x) for d in others]),
        low,
        high,
        limit=500,
        epsabs=1e-14,
        points=[d.median() for d in others if low < d.median() < high] or None,
    )
    return value


# --- P(best) against references --------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [((50, 50), (60, 40)), ((0, 0), (3, 1)), ((5, 200), (9, 190)), ((400, 600), (420, 580))],
)
def test_two_binary_arms_equal_the_closed_form(a: tuple[int, int], b: tuple[int, int]) -> None:
    best = best_probabilities([binary(*a), binary(*b)], CONFIG)
    expected = beta_b_beats_a((1 + a[0], 1 + a[1]), (1 + b[0], 1 + b[1]))
    assert math.isclose(best[1], expected, rel_tol=1e-8, abs_tol=1e-10)
    assert math.isclose(best[0] + best[1], 1.0, rel_tol=1e-12)


def test_large_binary_arms_keep_their_precision() -> None:
    # Narrow posteriors (sd ~5e-4): the integral must not step over them.
    a, b = (500_000, 500_000), (500_500, 499_500)
    best = best_probabilities([binary(*a), binary(*b)], CONFIG)
    expected = stats.norm.cdf(0.0005 / math.sqrt(2 * 0.25 / 1_000_002))  # ~Normal
    assert math.isclose(best[1], expected, abs_tol=1e-3)
    ref = scipy_best([stats.beta(1 + a[0], 1 + a[1]), stats.beta(1 + b[0], 1 + b[1])], 1)
    assert math.isclose(best[1], ref, rel_tol=1e-7)


def reference_normal(values: list[float], pooled: list[float], n0: float) -> tuple[float, float]:
    """The posterior of the mean as the posteriors module's docstring states it."""
    m0, v0 = float(np.mean(pooled)), float(np.var(pooled, ddof=1))
    n = len(values)
    m = float(np.mean(values)) if n else m0
    ss = float(np.sum((np.asarray(values) - m) ** 2)) if n >= 2 else 0.0
    sigma2 = (ss + n0 * v0) / (max(n - 1, 0) + n0)
    return (n * m + n0 * m0) / (n + n0), math.sqrt(sigma2 / (n + n0))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_two_continuous_arms_equal_the_normal_closed_form(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(3.0, 2.0, 40).tolist(), rng.normal(3.4, 1.0, 25).tolist()
    arms = [RewardSummary.from_values(a), RewardSummary.from_values(b)]
    (ma, sa), (mb, sb) = (reference_normal(v, a + b, 1.0) for v in (a, b))
    dists = posteriors(arms, 1.0)
    assert dists is not None
    got = [x for d in dists if isinstance(d, NormalPosterior) for x in (d.mean, d.sd)]
    assert got == pytest.approx([ma, sa, mb, sb], rel=1e-9)
    expected = stats.norm.cdf((mb - ma) / math.hypot(sa, sb))
    assert math.isclose(best_probabilities(arms, CONFIG)[1], expected, rel_tol=1e-8)


def test_three_arms_equal_scipys_integral() -> None:
    arms = [binary(30, 70), binary(36, 64), RewardSummary()]
    best = best_probabilities(arms, CONFIG)
    dists = [stats.beta(31, 71), stats.beta(37, 65), stats.beta(1, 1)]
    assert best == pytest.approx([scipy_best(dists, i) for i in range(3)], rel=1e-7, abs=1e-10)


def test_three_continuous_arms_equal_scipys_integral() -> None:
    rng = np.random.default_rng(7)
    values = [rng.gamma(2.0, 1.0, n).tolist() for n in (10, 200, 3)]
    arms = [RewardSummary.from_values(v) for v in values]
    pooled = [x for v in values for x in v]
    dists = [stats.norm(*reference_normal(v, pooled, 2.0)) for v in values]
    best = best_probabilities(arms, BanditConfig(prior_weight=2.0))
    assert best == pytest.approx([scipy_best(dists, i) for i in range(3)], rel=1e-7, abs=1e-10)


@pytest.mark.parametrize(
    "arms",
    [
        [binary(50, 50), binary(60, 40)],
        [binary(3, 10), binary(5, 9), binary(1, 1), RewardSummary()],
        [RewardSummary.from_values([0.5, 1.5, 2.0]), RewardSummary.from_values([1.0, 2.5])],
    ],
)
def test_monte_carlo_agrees_with_the_integral(arms: list[RewardSummary]) -> None:
    draws = 40_000
    counted = best_probabilities(arms, BanditConfig(method="monte_carlo", draws=draws, seed=5))
    exact = best_probabilities(arms, CONFIG)
    for c, e in zip(counted, exact, strict=True):
        assert abs(c - e) <= 4.5 * math.sqrt(e * (1 - e) / draws) + 1e-12


def test_monte_carlo_is_seeded() -> None:
    arms = {"A": binary(10, 12), "B": binary(12, 10)}
    one = thompson_weights(arms, BanditConfig(method="monte_carlo", seed=1))
    assert thompson_weights(arms, BanditConfig(method="monte_carlo", seed=1)) == one
    assert thompson_weights(arms, BanditConfig(method="monte_carlo", seed=2)).best != one.best


# --- what nothing tells apart -------------------------------------------------------


def test_arms_without_data_share_the_prior_and_split_evenly() -> None:
    w = thompson_weights({"A": RewardSummary(), "B": RewardSummary(), "C": RewardSummary()}, CONFIG)
    assert w.best == pytest.approx({"A": 1 / 3, "B": 1 / 3, "C": 1 / 3}, abs=1e-9)
    assert w.units == {"A": 334, "B": 333, "C": 333}  # the spare unit to the first arm


def test_continuous_rewards_all_equal_split_evenly() -> None:
    same = RewardSummary.from_values([2.5, 2.5, 2.5])
    assert best_probabilities([same, same, RewardSummary()], CONFIG) == [1 / 3] * 3


def test_a_continuous_arm_without_data_gets_the_pooled_prior() -> None:
    a, b = [1.0, 2.0, 3.5, 0.5], [2.0, 2.5]
    arms = [RewardSummary.from_values(a), RewardSummary.from_values(b), RewardSummary()]
    dists = posteriors(arms, 1.0)
    assert dists is not None
    assert dists[2] == NormalPosterior(
        mean=pytest.approx(np.mean(a + b)), sd=pytest.approx(np.std(a + b, ddof=1))
    )


def test_one_non_binary_reward_makes_every_arm_normal() -> None:
    dists = posteriors([binary(3, 4), RewardSummary.from_values([0.5, 1.0])], 1.0)
    assert dists is not None and all(isinstance(d, NormalPosterior) for d in dists)
    beta = posteriors([binary(3, 4), RewardSummary()], 1.0)
    assert beta == [BetaPosterior(4.0, 5.0), BetaPosterior(1.0, 1.0)]


def test_an_even_split_until_every_arm_has_min_rewards() -> None:
    config = BanditConfig(min_rewards=20)
    early = {"A": binary(2, 17), "B": binary(19, 1)}  # A has 19 rewards: still warming up
    assert thompson_weights(early, config).units == {"A": 500, "B": 500}
    warm = {"A": binary(2, 18), "B": binary(19, 1)}
    assert thompson_weights(warm, config).units == {"A": 50, "B": 950}


def test_a_single_arm_gets_everything() -> None:
    w = thompson_weights({"only": binary(1, 9)}, CONFIG)
    assert w.units == {"only": 1000} and w.percents() == {"only": 100.0}


# --- floor, rounding, config ----------------------------------------------------------


def test_the_floor_keeps_the_loser_exploring() -> None:
    w = thompson_weights({"A": binary(100, 900), "B": binary(900, 100)}, CONFIG)
    assert w.best["A"] < 1e-12
    assert w.units == {"A": 50, "B": 950}
    assert w.shares() == {"A": 0.05, "B": 0.95}
    assert w.percents() == {"A": 5.0, "B": 95.0}


def test_percents_are_the_decimal_numbers() -> None:
    w = thompson_weights({"A": binary(50, 50), "B": binary(60, 40)}, CONFIG)
    assert w.units == {"A": 121, "B": 879}
    assert w.percents() == {"A": 12.1, "B": 87.9}
    assert str(w.percents()["B"]) == "87.9"


def test_a_floor_that_fills_everything_is_feasible() -> None:
    arms = {k: binary(i, 3) for i, k in enumerate("ABCD")}
    w = thompson_weights(arms, BanditConfig(floor=0.25))
    assert set(w.units.values()) == {250}


def test_an_infeasible_floor_is_refused_with_the_limit() -> None:
    arms = {k: RewardSummary() for k in "ABC"}
    limit = r"floor 0\.34 for 3 arms is 1\.02 > 1: lower the floor to at most 0\.333333"
    with pytest.raises(BanditConfigError, match=limit):
        thompson_weights(arms, BanditConfig(floor=0.34))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("floor", 1.0, r"floor must be in \[0, 1\), not 1\.0"),
        ("floor", -0.1, r"floor must be in"),
        ("resolution", 0, r"resolution must be a whole number >= 1, not 0"),
        ("resolution", 10.5, r"resolution must be"),
        ("min_change", 2, r"min_change must be in \[0, 1\], not 2"),
        ("prior_weight", 0.0, r"prior_weight must be > 0"),
        ("min_rewards", -1, r"min_rewards must be a whole number >= 0, not -1"),
        ("method", "exact", r"method must be 'integral' or 'monte_carlo', not 'exact'"),
        ("draws", 0, r"draws must be a whole number >= 1"),
    ],
)
def test_bad_settings_name_the_setting(field: str, value: object, message: str) -> None:
    with pytest.raises(BanditConfigError, match=message):
        BanditConfig(**{field: value})  # type: ignore[arg-type]


def test_no_arm_is_refused() -> None:
    with pytest.raises(BanditConfigError, match="at least one arm"):
        thompson_weights({}, CONFIG)


# --- hysteresis -------------------------------------------------------------------


def test_should_rewrite() -> None:
    old = {"A": 50.0, "B": 50.0}
    assert should_rewrite(None, {"A": 0.5, "B": 0.5}, 0.01)
    assert not should_rewrite(old, {"A": 0.505, "B": 0.495}, 0.01)  # raw weights vs shares
    assert should_rewrite(old, {"A": 0.51, "B": 0.49}, 0.01)
    assert should_rewrite(old, {"A": 0.5, "C": 0.5}, 0.01)
    assert should_rewrite({"A": 0.0, "B": 0.0}, {"A": 0.5, "B": 0.5}, 0.01)
    assert should_rewrite(old, {"A": 0.5, "B": 0.5}, 0.0)  # 0: any result is rewritten


def test_equal_statistics_write_nothing_new() -> None:
    arms = {"A": binary(40, 60), "B": binary(45, 55)}
    first, again = thompson_weights(arms, CONFIG), thompson_weights(arms, CONFIG)
    assert first == again
    assert not should_rewrite(first.shares(), again.shares(), CONFIG.min_change)


# --- invariants -------------------------------------------------------------------

ARM = st.tuples(st.integers(0, 400), st.integers(0, 400))


@FAST
@given(st.lists(ARM, min_size=1, max_size=6), st.sampled_from([0.0, 0.01, 0.05, 0.1]))
def test_property_weights_sum_to_one_and_keep_the_floor(
    counts: list[tuple[int, int]], floor: float
) -> None:
    config = BanditConfig(floor=floor)
    w = thompson_weights({i: binary(*c) for i, c in enumerate(counts)}, config)
    assert sum(w.units.values()) == config.resolution
    assert math.isclose(math.fsum(w.shares().values()), 1.0, rel_tol=1e-12)
    assert all(u >= config.floor_units() for u in w.units.values())
    assert math.isclose(math.fsum(w.best.values()), 1.0, rel_tol=1e-9)
    assert thompson_weights({i: binary(*c) for i, c in enumerate(counts)}, config) == w


@FAST
@given(st.lists(ARM, min_size=2, max_size=4), st.data())
def test_property_a_success_more_never_lowers_an_arms_chance(
    counts: list[tuple[int, int]], data: st.DataObject
) -> None:
    i = data.draw(st.integers(0, len(counts) - 1))
    before = best_probabilities([binary(*c) for c in counts], CONFIG)
    better = [(s + 1, f) if j == i else (s, f) for j, (s, f) in enumerate(counts)]
    after = best_probabilities([binary(*c) for c in better], CONFIG)
    assert after[i] >= before[i] - 1e-9


@FAST
@given(ARM, ARM)
def test_property_two_arms_rounded_weights_follow_better_data(
    a: tuple[int, int], b: tuple[int, int]
) -> None:
    before = thompson_weights({"A": binary(*a), "B": binary(*b)}, CONFIG)
    after = thompson_weights({"A": binary(*a), "B": binary(b[0] + 1, b[1])}, CONFIG)
    assert after.units["B"] >= before.units["B"]


@FAST
@given(st.lists(ARM, min_size=2, max_size=4), st.randoms(use_true_random=False))
def test_property_the_order_of_the_arms_does_not_matter(
    counts: list[tuple[int, int]], random: object
) -> None:
    order = list(range(len(counts)))
    random.shuffle(order)  # type: ignore[attr-defined]
    straight = best_probabilities([binary(*c) for c in counts], CONFIG)
    shuffled = best_probabilities([binary(*counts[i]) for i in order], CONFIG)
    assert [shuffled[order.index(i)] for i in range(len(counts))] == pytest.approx(
        straight, abs=1e-8
    )
