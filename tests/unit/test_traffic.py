"""service.traffic.router: splitting a model's requests between its targets under a policy."""

from __future__ import annotations

import random
from collections import Counter
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry_watcher.targets import Target, parse_target
from registry_watcher.traffic_policy import Shadow, TrafficPolicy, policy_from_dict
from service.traffic.router import (
    BUCKETS,
    ROUTING_KEY_HEADER,
    Decision,
    NoTargetAvailable,
    bucket,
    decide,
    effective_shares,
)

FAST = settings(max_examples=200, deadline=None, database=None, derandomize=True)

PROD = parse_target("Production")
STAGING = parse_target("Staging")
CHAMP = parse_target("@champion")
V7 = parse_target("7")
ALL = frozenset({PROD, STAGING, CHAMP, V7})

N = 100_000
KEYS = tuple(f"user-{i}" for i in range(N))
TOLERANCE = 0.005  # 0.5 percentage points


def policy(
    weights: dict[str, float], sticky: bool = True, shadow: dict | None = None
) -> TrafficPolicy:
    return policy_from_dict({"weights": weights, "sticky": sticky, "shadow": shadow})


def no_rand() -> float:
    raise AssertionError("sticky routing without a shadow must not draw a random number")


@cache
def sticky_targets(
    p: TrafficPolicy, available: frozenset[Target], n: int = N
) -> tuple[Target, ...]:
    """The target of each of the first n KEYS; cached: several tests share the same runs."""
    return tuple(decide(p, available, key, rand=no_rand).target for key in KEYS[:n])


def observed(targets: tuple[Target, ...] | list[Target]) -> dict[Target, float]:
    counts = Counter(targets)
    return {t: n / len(targets) for t, n in counts.items()}


def assert_shares(seen: dict[Target, float], expected: dict[Target, float]) -> None:
    for target in set(seen) | set(expected):
        got, want = seen.get(target, 0.0), expected.get(target, 0.0)
        assert abs(got - want) <= TOLERANCE, f"{target.text}: {got:.4f} vs {want:.4f}"


class CountingRand:
    """A seeded random source that counts how often it is drawn."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self._random.random()


def test_constants() -> None:
    assert ROUTING_KEY_HEADER == "x-routing-key"
    assert BUCKETS == 10_000


# --- bucket -------------------------------------------------------------------------


def test_bucket_values_are_pinned() -> None:
    # Pinned once from sha256: replicas, restarts and releases must agree on a key's
    # bucket, or users flip between targets. A change of hash function (or Python's
    # per-process salted hash()) fails here.
    assert bucket("user-1") == 7032
    assert bucket("alice") == 3148
    assert bucket("alice", salt="fallback") == 9643
    assert bucket("ünïcode-ключ") == 6712


def test_bucket_survives_lone_surrogates() -> None:
    # Header values can decode to anything; a routing key must never crash the router.
    assert bucket("\ud800") == 1414


def test_salt_gives_an_independent_bucket() -> None:
    keys = KEYS[:2000]
    same = sum(bucket(k) == bucket(k, salt="fallback") for k in keys)
    assert same < 20  # ~1 in BUCKETS by chance


@FAST
@given(key=st.text(max_size=40), salt=st.text(max_size=10))
def test_bucket_in_range_and_repeatable(key: str, salt: str) -> None:
    b = bucket(key, salt)
    assert 0 <= b < BUCKETS
    assert bucket(key, salt) == b


def test_buckets_spread_evenly() -> None:
    tenths = Counter(bucket(k) * 10 // BUCKETS for k in KEYS)
    assert all(abs(n / N - 0.1) <= TOLERANCE for n in tenths.values()), tenths


# --- sticky routing -----------------------------------------------------------------


@pytest.mark.parametrize(
    "weights",
    [
        {"Production": 90, "Staging": 10},
        {"Production": 70, "Staging": 30},
        {"Production": 50, "Staging": 50},
        {"Production": 60, "Staging": 30, "@champion": 10},
    ],
)
def test_sticky_shares_match_the_weights(weights: dict[str, float]) -> None:
    p = policy(weights)
    assert_shares(observed(sticky_targets(p, ALL)), p.shares())


def test_sticky_decision_is_labelled_and_has_no_shadow() -> None:
    decision = decide(policy({"Production": 90, "Staging": 10}), ALL, "user-1", rand=no_rand)
    assert decision == Decision(target=decision.target, shadow=None, how="sticky")


def test_same_key_same_target() -> None:
    p = policy({"Production": 50, "Staging": 30, "@champion": 20})
    for key in KEYS[:300]:
        first = decide(p, ALL, key).target
        assert all(decide(p, ALL, key).target == first for _ in range(5))


def test_same_key_same_target_for_another_equal_policy_object() -> None:
    # Every replica parses its own copy of the tag.
    a = policy({"Production": 90, "Staging": 10})
    b = policy({"production": 90.0, "STAGING": 10})
    assert [decide(a, ALL, k).target for k in KEYS[:500]] == [
        decide(b, ALL, k).target for k in KEYS[:500]
    ]


def test_pinned_key_routes() -> None:
    # bucket("user-1") == 7032: under 90/10 it is in Production's [0, 9000), under
    # 70/30 in Staging's [7000, 10000).
    assert decide(policy({"Production": 90, "Staging": 10}), ALL, "user-1").target == PROD
    assert decide(policy({"Production": 70, "Staging": 30}), ALL, "user-1").target == STAGING


def test_ranges_follow_the_policy_order() -> None:
    # Same weights, other order: the key moves with the layout.
    assert decide(policy({"Staging": 30, "Production": 70}), ALL, "user-1").target == PROD


def test_shifting_90_10_to_80_20_moves_about_ten_percent() -> None:
    before = sticky_targets(policy({"Production": 90, "Staging": 10}), ALL)
    after = sticky_targets(policy({"Production": 80, "Staging": 20}), ALL)
    moved = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert 0.09 <= len(moved) / N <= 0.11
    assert set(moved) == {(PROD, STAGING)}  # nobody moves the other way


def test_emptied_target_spreads_its_keys_and_nobody_else_moves() -> None:
    p = policy({"Production": 60, "Staging": 30, "@champion": 10})
    before = sticky_targets(p, ALL)
    after = sticky_targets(p, ALL - {STAGING})
    for was, now in zip(before, after, strict=True):
        if was != STAGING:
            assert now == was
    refugees = [now for was, now in zip(before, after, strict=True) if was == STAGING]
    assert len(refugees) > 0.25 * N
    assert_shares(observed(refugees), {PROD: 6 / 7, CHAMP: 1 / 7})
    assert_shares(observed(after), {PROD: 6 / 7, CHAMP: 1 / 7})


def test_emptied_first_target() -> None:
    p = policy({"Production": 50, "Staging": 25, "@champion": 25})
    before = sticky_targets(p, ALL, 10_000)
    after = sticky_targets(p, ALL - {PROD}, 10_000)
    assert all(now == was for was, now in zip(before, after, strict=True) if was != PROD)
    shares = observed(after)
    assert set(shares) == {STAGING, CHAMP}
    assert abs(shares[STAGING] - 0.5) <= 0.02  # 10,000 keys only; 100,000 are checked above


def test_keys_return_when_the_target_is_back() -> None:
    p = policy({"Production": 90, "Staging": 10})
    for key in KEYS[:500]:
        home = decide(p, ALL, key).target
        away = decide(p, ALL - {home}, key).target
        assert away != home
        assert decide(p, ALL, key).target == home


def test_sticky_needs_a_non_empty_key() -> None:
    p = policy({"Production": 50, "Staging": 50})
    for key in (None, ""):
        decision = decide(p, ALL, key, rand=random.Random(0).random)
        assert decision.how == "random"


def test_sticky_false_ignores_the_key() -> None:
    p = policy({"Production": 50, "Staging": 50}, sticky=False)
    rand = random.Random(3).random
    targets = {decide(p, ALL, "user-1", rand=rand).target for _ in range(200)}
    assert targets == {PROD, STAGING}
    assert decide(p, ALL, "user-1", rand=rand).how == "random"


# --- random routing -----------------------------------------------------------------


def random_shares(
    p: TrafficPolicy, key: str | None, available: frozenset[Target] = ALL, n: int = N
) -> dict[Target, float]:
    rand = random.Random(20240611).random
    decisions = [decide(p, available, key, rand=rand) for _ in range(n)]
    assert {d.how for d in decisions} == {"random"}
    return observed([d.target for d in decisions])


def test_random_shares_not_sticky() -> None:
    p = policy({"Production": 70, "Staging": 30}, sticky=False)
    assert_shares(random_shares(p, "user-1"), {PROD: 0.7, STAGING: 0.3})


def test_random_shares_sticky_without_key_and_a_target_empty() -> None:
    p = policy({"Production": 60, "Staging": 30, "@champion": 10, "7": 0})
    shares = random_shares(p, None, ALL - {STAGING}, 20_000)
    assert set(shares) == {PROD, CHAMP}
    assert abs(shares[PROD] - 6 / 7) <= 0.01  # 20,000 draws; 100,000 are checked above


def test_random_uses_one_draw_and_the_edges_of_zero_to_one() -> None:
    p = policy({"Production": 0, "Staging": 90, "@champion": 10}, sticky=False)
    rand = CountingRand(1)
    decide(p, ALL, None, rand=rand)
    assert rand.calls == 1
    assert decide(p, ALL, None, rand=lambda: 0.0).target == STAGING  # not the weight-0 one
    assert decide(p, ALL, None, rand=lambda: 0.8999).target == STAGING
    assert decide(p, ALL, None, rand=lambda: 0.9).target == CHAMP
    assert decide(p, ALL, None, rand=lambda: 1.0 - 2**-53).target == CHAMP


# --- weight zero and nothing available ----------------------------------------------


def test_weight_zero_target_is_never_chosen() -> None:
    p = policy({"Production": 0, "Staging": 100, "@champion": 0})
    assert set(sticky_targets(p, ALL, 10_000)) == {STAGING}
    rand = random.Random(5).random
    assert {decide(p, ALL, None, rand=rand).target for _ in range(5000)} == {STAGING}


def test_weight_zero_target_takes_no_refugees() -> None:
    p = policy({"Production": 0, "Staging": 50, "@champion": 50})
    assert set(sticky_targets(p, ALL - {STAGING}, 10_000)) == {CHAMP}


def test_no_target_available() -> None:
    p = policy({"Production": 90, "Staging": 10})
    for key in ("user-1", None):
        with pytest.raises(NoTargetAvailable) as info:
            decide(p, frozenset({CHAMP}), key)
        message = str(info.value)
        assert "Production, Staging" in message
        assert "has a version loaded" in message


def test_only_weight_zero_targets_available_is_no_target() -> None:
    p = policy({"Production": 100, "Staging": 0})
    assert effective_shares(p, {STAGING}) == {}
    with pytest.raises(NoTargetAvailable):
        decide(p, {STAGING}, "user-1")
    with pytest.raises(NoTargetAvailable):
        decide(p, {STAGING}, None)


# --- effective_shares ---------------------------------------------------------------


def test_effective_shares() -> None:
    p = policy({"Production": 60, "Staging": 30, "@champion": 10, "7": 0})
    assert effective_shares(p, ALL) == pytest.approx({PROD: 0.6, STAGING: 0.3, CHAMP: 0.1, V7: 0})
    assert list(effective_shares(p, ALL)) == [PROD, STAGING, CHAMP, V7]
    assert effective_shares(p, {PROD, CHAMP}) == pytest.approx({PROD: 6 / 7, CHAMP: 1 / 7})
    assert effective_shares(p, {CHAMP, V7}) == {CHAMP: 1.0, V7: 0.0}
    assert effective_shares(p, {V7}) == {}
    assert effective_shares(p, set()) == {}
    assert effective_shares(p, {parse_target("@other"), PROD}) == {PROD: 1.0}


# --- shadow -------------------------------------------------------------------------


def test_shadow_at_the_configured_percentage() -> None:
    p = policy({"Production": 100}, sticky=False, shadow={"target": "Staging", "percent": 25})
    rand = random.Random(99).random
    decisions = [decide(p, ALL, None, rand=rand) for _ in range(N)]
    assert {d.target for d in decisions} == {PROD}
    mirrored = sum(d.shadow == STAGING for d in decisions)
    assert {d.shadow for d in decisions} == {STAGING, None}
    assert abs(mirrored / N - 0.25) <= TOLERANCE


def test_shadow_of_sticky_requests_is_random_not_by_key() -> None:
    p = policy({"Production": 100}, shadow={"target": "Staging", "percent": 25})
    rand = random.Random(7).random
    decisions = [decide(p, ALL, key, rand=rand) for key in KEYS[:20_000]]
    assert {d.how for d in decisions} == {"sticky"}
    # 20,000 requests; the percentage over 100,000 is checked above.
    assert abs(sum(d.shadow is not None for d in decisions) / 20_000 - 0.25) <= 0.01
    # One key, many requests: sometimes mirrored, sometimes not.
    assert {decide(p, ALL, "user-1", rand=rand).shadow for _ in range(200)} == {STAGING, None}


def test_shadow_never_equals_the_chosen_target() -> None:
    p = policy(
        {"Production": 50, "Staging": 50},
        sticky=False,
        shadow={"target": "Staging", "percent": 100},
    )
    rand = random.Random(11).random
    for _ in range(5000):
        d = decide(p, ALL, None, rand=rand)
        assert d.shadow == (None if d.target == STAGING else STAGING)


def test_no_shadow_when_the_shadow_target_is_unavailable() -> None:
    p = policy({"Production": 100}, sticky=False, shadow={"target": "@champion", "percent": 100})
    rand = CountingRand(3)
    assert {decide(p, ALL - {CHAMP}, None, rand=rand).shadow for _ in range(1000)} == {None}
    assert rand.calls == 1000  # the target draw only; no shadow draw


def test_random_draws_per_decision() -> None:
    shadowed = {"target": "@champion", "percent": 50}
    cases = [
        (policy({"Production": 1}), "user-1", 0),
        (policy({"Production": 1}, shadow=shadowed), "user-1", 1),
        (policy({"Production": 1}, sticky=False), "user-1", 1),
        (policy({"Production": 1}, sticky=False, shadow=shadowed), None, 2),
    ]
    for p, key, draws in cases:
        rand = CountingRand(0)
        decide(p, ALL, key, rand=rand)
        assert rand.calls == draws, (p, key)


# --- properties ---------------------------------------------------------------------

_POOL = (PROD, STAGING, CHAMP, V7, parse_target("Canary"), parse_target("@blue"))


@st.composite
def setups(draw: st.DrawFn) -> tuple[TrafficPolicy, frozenset[Target]]:
    targets = draw(st.lists(st.sampled_from(_POOL), min_size=1, max_size=len(_POOL), unique=True))
    weights = draw(
        st.lists(
            st.integers(0, 100) | st.floats(0, 1e6, allow_nan=False),
            min_size=len(targets),
            max_size=len(targets),
        )
    )
    if not any(w > 0 for w in weights):
        weights[0] = 1
    shadow = draw(st.none() | st.sampled_from(_POOL))
    p = TrafficPolicy(
        weights=tuple((t, float(w)) for t, w in zip(targets, weights, strict=True)),
        shadow=None if shadow is None else Shadow(shadow, 50.0),
        sticky=draw(st.booleans()),
    )
    available = frozenset(draw(st.sets(st.sampled_from(_POOL))))
    return p, available


@FAST
@given(
    setup=setups(),
    key=st.none() | st.text(max_size=20),
    r=st.floats(0, 1, exclude_max=True),
)
def test_property_decision_is_an_available_target_with_weight(
    setup: tuple[TrafficPolicy, frozenset[Target]], key: str | None, r: float
) -> None:
    p, available = setup
    draws = iter([r, 0.25])
    if not effective_shares(p, available):
        with pytest.raises(NoTargetAvailable):
            decide(p, available, key, rand=lambda: next(draws))
        return
    d = decide(p, available, key, rand=lambda: next(draws))
    assert d.target in available
    assert p.weight(d.target) > 0
    assert d.how == ("sticky" if p.sticky and key else "random")
    if d.shadow is not None:
        assert p.shadow is not None and d.shadow == p.shadow.target
        assert d.shadow in available and d.shadow != d.target


@FAST
@given(setup=setups(), keys=st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=8))
def test_property_sticky_is_deterministic_and_only_emptied_keys_move(
    setup: tuple[TrafficPolicy, frozenset[Target]], keys: list[str]
) -> None:
    p, available = setup
    p = TrafficPolicy(weights=p.weights, sticky=True)
    full = frozenset(p.targets())
    for key in keys:
        home = decide(p, full, key, rand=no_rand).target
        assert decide(p, full, key, rand=no_rand).target == home
        if not effective_shares(p, available):
            continue
        now = decide(p, available, key, rand=no_rand).target
        assert decide(p, available, key, rand=no_rand).target == now
        if home in available:
            assert now == home


@FAST
@given(
    old=st.integers(0, 100),
    new=st.integers(0, 100),
    keys=st.lists(st.text(min_size=1, max_size=12), max_size=50),
)
def test_property_two_targets_keys_only_move_toward_the_gainer(
    old: int, new: int, keys: list[str]
) -> None:
    def route(w: int) -> list[Target]:
        p = policy({"Production": w, "Staging": 100 - w})
        return [decide(p, ALL, k, rand=no_rand).target for k in keys]

    before, after = route(old), route(new)
    for a, b in zip(before, after, strict=True):
        if a != b:
            assert (a, b) == ((PROD, STAGING) if new < old else (STAGING, PROD))
