"""service/rollouts/rollout_plan.py and rollout_tag.py: the rollout's records, their
checks (each error names its field) and the one-tag codec, bounded to MLflow's limit."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.experiments.reward_stats import RewardSummary
from service.rollouts.gates import ControlFigures, Gates
from service.rollouts.rollout_plan import (
    DEFAULT_STEPS,
    MAX_HISTORY,
    Approval,
    Decision,
    MoveKind,
    Phase,
    Promotion,
    Rollout,
    RolloutPlan,
    RolloutState,
    ShadowPhase,
    default_approver,
    new_plan_id,
)
from service.rollouts.rollout_tag import (
    MAX_TAG_CHARS,
    ROLLOUT_TAG,
    decode_rollout,
    encode_rollout,
)
from service.rollouts.tag_fields import RolloutError

FAST = settings(max_examples=150, deadline=None, database=None, derandomize=True)
T0 = 1_764_500_000.25


def plan(**changes: Any) -> RolloutPlan:
    fields: dict[str, Any] = {
        "id": "abc123",
        "model": "churn",
        "control": "Production",
        "candidate": "Staging",
        "candidate_version": 7,
        "created_at": T0,
    }
    return RolloutPlan(**(fields | changes))


def state(**changes: Any) -> RolloutState:
    fields: dict[str, Any] = {"phase": Phase.STEP, "step": 0, "step_started_at": T0, "revision": 1}
    return RolloutState(**(fields | changes))


def decision(revision: int = 2, **changes: Any) -> Decision:
    fields: dict[str, Any] = {
        "revision": revision,
        "at": T0 + revision,
        "move": MoveKind.ADVANCE,
        "phase": Phase.STEP,
        "step": 1,
        "by": "controller@host:12",
        "reason": "every gate passed",
        "failed": (),
        "figures": {"candidate_requests": 1200, "p99_ratio": 1.04, "reward_test": "welch"},
    }
    return Decision(**(fields | changes))


def full_rollout() -> Rollout:
    p = plan(
        shadow=ShadowPhase(percent=10, min_agreement=0.9, min_requests=50),
        require_approval=True,
        sticky=True,
        steps=(2.5, 10, 50, 100),
        gates=Gates(max_error_rate_increase=0.02, max_p99_ratio=2.0, reward_not_worse=False),
    )
    s = state(
        phase=Phase.AWAITING_APPROVAL,
        step=3,
        revision=6,
        approval=Approval(by="ana", at=T0 + 99.5),
        reference=ControlFigures(1000, 0.001, 0.0995, RewardSummary(10, 4.0, 4.0, 0)),
        history=(decision(2), decision(3, failed=("p99_ratio",), figures={"x": None})),
        dropped=2,
    )
    return Rollout(p, s)


# --- the plan -----------------------------------------------------------------------


def test_plan_defaults() -> None:
    p = plan()
    assert p.steps == DEFAULT_STEPS == (5.0, 25.0, 50.0, 100.0)
    assert p.gates == Gates(max_error_rate_increase=0.01, max_p99_ratio=1.5, reward_not_worse=True)
    assert (p.shadow, p.require_approval, p.sticky) == (None, False, False)
    assert (p.min_step_seconds, p.min_step_requests) == (60.0, 100)


def test_targets_are_kept_canonical() -> None:
    p = plan(control=" production ", candidate="staging")
    assert (p.control, p.candidate) == ("Production", "Staging")
    assert p.control_target().text == "Production"
    assert p.candidate_target().text == "Staging"


@pytest.mark.parametrize(
    ("control", "promotion"),
    [
        ("Production", Promotion("stage", "Production")),
        ("Staging", Promotion("stage", "Staging")),
        ("@champion", Promotion("alias", "champion")),
    ],
)
def test_promotion_follows_the_control(control: str, promotion: Promotion) -> None:
    p = plan(control=control, candidate="@challenger")
    assert p.promotion == promotion
    assert p.promotion.text == f"{promotion.kind}:{promotion.name}"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"id": ""}, "id: letters"),
        ({"id": "a b"}, "id: letters"),
        ({"id": "x" * 65}, "id: letters"),
        ({"model": ""}, "model: must not be empty"),
        ({"control": "@"}, "control: invalid alias"),
        ({"candidate": ""}, "candidate: empty target"),
        ({"candidate": "production"}, "candidate: must differ from the control"),
        ({"control": "3"}, "control: cannot be promoted to"),
        ({"control": "Archived"}, "control: cannot be promoted to"),
        ({"control": "Canary"}, "control: cannot be promoted to"),
        ({"candidate_version": 0}, "candidate_version: must be >= 1"),
        ({"created_at": float("nan")}, "created_at: must be a time"),
        ({"steps": ()}, "steps: must list 1 to 20"),
        ({"steps": tuple(range(1, 23))}, "steps: must list 1 to 20"),
        ({"steps": (0, 50)}, "steps[0]: must be > 0 and <= 100"),
        ({"steps": (5, 101)}, "steps[1]: must be > 0 and <= 100"),
        ({"steps": (5, float("nan"))}, "steps[1]: must be > 0"),
        ({"steps": (25, 25, 100)}, "steps[1]: must be above the step before"),
        ({"steps": (50, 25)}, "steps[1]: must be above the step before"),
        ({"steps": (100,)}, "steps[0]: must be below 100"),
        ({"min_step_seconds": -1}, "min_step_seconds: must be >= 0"),
        ({"min_step_seconds": float("inf")}, "min_step_seconds: must be >= 0"),
        ({"min_step_requests": 0}, "min_step_requests: must be >= 1"),
        ({"gates": Gates(max_error_rate_increase=-0.1)}, "gates.max_error_rate_increase"),
        ({"gates": Gates(max_error_rate_increase=1.5)}, "gates.max_error_rate_increase"),
        ({"gates": Gates(max_p99_ratio=0.9)}, "gates.max_p99_ratio: must be >= 1"),
        ({"gates": Gates(max_p99_ratio=float("inf"))}, "gates.max_p99_ratio: must be >= 1"),
    ],
)
def test_plan_errors_name_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(RolloutError, match=f"^{re.escape(message)}"):
        plan(**changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"percent": 0}, "shadow.percent"),
        ({"percent": 100.5}, "shadow.percent"),
        ({"min_agreement": 1.01}, "shadow.min_agreement"),
        ({"min_agreement": float("nan")}, "shadow.min_agreement"),
        ({"min_requests": 0}, "shadow.min_requests"),
    ],
)
def test_shadow_phase_errors_name_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(RolloutError, match=f"^{re.escape(message)}"):
        ShadowPhase(**({"percent": 10} | changes))


def test_error_shows_the_value_as_json() -> None:
    with pytest.raises(RolloutError) as info:
        plan(min_step_requests=0)
    assert str(info.value) == "min_step_requests: must be >= 1, got 0"


def test_plan_ids_are_fresh_and_valid() -> None:
    ids = {new_plan_id() for _ in range(50)}
    assert len(ids) == 50
    for plan_id in ids:
        assert plan(id=plan_id).id == plan_id


# --- approvals, states, rollouts ----------------------------------------------------


def test_default_approver_is_a_valid_name() -> None:
    who = default_approver()
    assert Approval(by=who, at=T0).by == who


@pytest.mark.parametrize("by", ["", "x" * 101, "ana\nroot"])
def test_approval_needs_a_printable_name(by: str) -> None:
    with pytest.raises(RolloutError, match=r"^approval\.by: must be a printable name"):
        Approval(by=by, at=T0)


def test_terminal_phases_are_finished() -> None:
    finished = {phase for phase in Phase if state(phase=phase).finished}
    assert finished == {Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED}


def test_rollout_checks_the_state_against_the_plan() -> None:
    with pytest.raises(RolloutError, match=r"^state\.step: must be an index into the plan's 4"):
        Rollout(plan(), state(step=4))
    with pytest.raises(RolloutError, match=r"^state\.phase: the plan has no shadow phase"):
        Rollout(plan(), state(phase=Phase.SHADOW))
    shadowed = plan(shadow=ShadowPhase(percent=5))
    with pytest.raises(RolloutError, match=r"^state\.step: must be 0 in the shadow phase"):
        Rollout(shadowed, state(phase=Phase.SHADOW, step=1))


# --- the tag ------------------------------------------------------------------------


def test_tag_name() -> None:
    assert ROLLOUT_TAG == "stageserve.rollout"


def test_round_trip_of_a_full_rollout() -> None:
    rollout = full_rollout()
    text = encode_rollout(rollout)
    assert decode_rollout(text) == rollout
    assert encode_rollout(decode_rollout(text)) == text


def test_text_is_compact_stable_json() -> None:
    text = encode_rollout(Rollout(plan(), state()))
    assert ": " not in text and ", " not in text
    obj = json.loads(text)
    assert list(obj) == ["v", "plan", "state"]
    assert obj["plan"]["steps"] == [5, 25, 50, 100]  # integral numbers as ints
    assert obj["plan"]["shadow"] is None
    assert text == encode_rollout(Rollout(plan(), state()))


def test_non_ascii_names_are_escaped() -> None:
    rollout = Rollout(plan(model="modèle"), state(history=(decision(by="José"),)))
    text = encode_rollout(rollout)
    assert text.isascii()
    assert decode_rollout(text) == rollout


def full_json() -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(encode_rollout(full_rollout()))
    return obj


def without(obj: dict[str, Any], path: str) -> dict[str, Any]:
    *parents, last = path.split(".")
    node: Any = obj
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    del node[last]
    return obj


def replaced(obj: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    *parents, last = path.split(".")
    node: Any = obj
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return obj


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("v", 2, "v: format 2 is not 1"),
        ("plan.model", 5, "plan.model: must be a non-empty string, got 5"),
        (
            "plan.candidate_version",
            "7",
            'plan.candidate_version: must be a whole number >= 1, got "7"',
        ),
        ("plan.candidate_version", 7.5, "plan.candidate_version: must be a whole number"),
        ("plan.candidate_version", True, "plan.candidate_version: must be a whole number"),
        ("plan.steps", [5, "x"], 'plan.steps[1]: must be a number, got "x"'),
        ("plan.steps", [50, 25], "plan.steps[1]: must be above the step before"),
        ("plan.steps", "5,25", "plan.steps: must be an array"),
        ("plan.steps", list(range(1, 30)), "plan.steps: at most 20 items"),
        ("plan.gates", [], "plan.gates: must be a JSON object"),
        ("plan.gates.max_p99_ratio", 0.5, "plan.gates.max_p99_ratio: must be >= 1"),
        ("plan.gates.reward_not_worse", 1, "plan.gates.reward_not_worse: must be true or false"),
        ("plan.shadow.percent", 0, "plan.shadow.percent: must be > 0"),
        ("plan.shadow.min_requests", -1, "plan.shadow.min_requests: must be a whole number >= 1"),
        ("plan.sticky", "yes", "plan.sticky: must be true or false"),
        ("plan.control", "4", "plan.control: cannot be promoted to"),
        ("plan.created_at", 1e999, "plan.created_at: must be a finite number"),
        ("state.phase", "paused", "state.phase: must be one of shadow, step, awaiting_approval"),
        ("state.step", 9, "state.step: must be an index into the plan's 4 steps"),
        ("state.revision", 0, "state.revision: must be a whole number >= 1"),
        ("state.approval.by", "", "state.approval.by: must be a non-empty string"),
        ("state.approval.by", "a\tb", "state.approval.by: must be a printable name"),
        ("state.reference.p99", "fast", "state.reference.p99: must be a number"),
        ("state.reference.rewards.count", -1, "state.reference.rewards.count: must be a whole"),
        ("state.history", {}, "state.history: must be an array"),
        ("state.history.0.move", "jump", "state.history[0].move: must be one of start, hold"),
        ("state.history.1.failed", "p99", "state.history[1].failed: must be an array"),
        ("state.history.1.figures", [], "state.history[1].figures: must be a JSON object"),
        (
            "state.history.0.figures.p99_ratio",
            True,
            "state.history[0].figures.p99_ratio: must be a number",
        ),
        ("state.history.0.reason", None, "state.history[0].reason: must be a string"),
        ("state.dropped", -3, "state.dropped: must be a whole number >= 0"),
    ],
)
def test_decode_errors_name_the_field(path: str, value: object, message: str) -> None:
    text = json.dumps(replaced(full_json(), path, value))
    with pytest.raises(RolloutError) as info:
        decode_rollout(text)
    assert str(info.value).startswith(message), str(info.value)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("plan", "stageserve.rollout.plan: required"),
        ("plan.id", "plan.id: required"),
        ("plan.gates.max_p99_ratio", "plan.gates.max_p99_ratio: required"),
        ("plan.shadow.percent", "plan.shadow.percent: required"),
        ("state.history", "state.history: required"),
        ("state.reference.rewards", "state.reference.rewards: required"),
        ("state.history.0.by", "state.history[0].by: required"),
    ],
)
def test_decode_names_a_missing_field(path: str, message: str) -> None:
    with pytest.raises(RolloutError, match=f"^{re.escape(message)}"):
        decode_rollout(json.dumps(without(full_json(), path)))


def test_decode_names_unknown_keys() -> None:
    obj = full_json()
    obj["state"]["paused"] = True
    with pytest.raises(RolloutError, match=r"^state: unknown key\(s\) 'paused'"):
        decode_rollout(json.dumps(obj))


@pytest.mark.parametrize("text", ["", "{", "[1]", "null", '"x"', "[" * 100_000])
def test_decode_refuses_what_is_not_a_rollout(text: str) -> None:
    with pytest.raises(RolloutError, match=r"^stageserve\.rollout: "):
        decode_rollout(text)


def test_decisions_without_failures_or_figures_omit_the_keys() -> None:
    bare = decision(figures={})
    obj = json.loads(encode_rollout(Rollout(plan(), state(history=(bare,)))))
    assert set(obj["state"]["history"][0]) == {"rev", "at", "move", "phase", "step", "by", "reason"}


# --- the size bound -----------------------------------------------------------------


def big_decision(revision: int) -> Decision:
    figures = {f"figure_{i:02}": 0.123456789 * (i + revision) for i in range(12)}
    return decision(revision, reason="r" * 200, figures=figures)


def test_the_encoder_keeps_the_tag_within_mlflows_column() -> None:
    history = tuple(big_decision(r) for r in range(2, 2 + MAX_HISTORY))
    rollout = Rollout(plan(), state(history=history, revision=1 + MAX_HISTORY, dropped=4))
    assert len(json.dumps([dataclasses.asdict(d) for d in history])) > MAX_TAG_CHARS
    text = encode_rollout(rollout)
    assert len(text) <= MAX_TAG_CHARS
    kept = decode_rollout(text).state
    assert kept.history[-1] == history[-1]  # the newest entry whole, figures and all
    assert kept.dropped == 4 + len(history) - len(kept.history)
    assert kept.history == tuple(
        dataclasses.replace(d, figures={}) if d is not history[-1] else d
        for d in history[-len(kept.history) :]
    )  # older entries keep their moves and reasons, not their figures


def test_figures_go_before_entries() -> None:
    history = tuple(big_decision(r) for r in range(2, 5))
    rollout = Rollout(plan(), state(history=history))
    assert len(encode_rollout(rollout)) <= MAX_TAG_CHARS
    assert decode_rollout(encode_rollout(rollout)).state == rollout.state  # fits: untouched


def test_a_plan_too_big_for_the_tag_is_refused() -> None:
    rollout = Rollout(plan(model="m" * MAX_TAG_CHARS), state(history=(decision(),)))
    with pytest.raises(RolloutError, match="over the registry's limit of 5000"):
        encode_rollout(rollout)


# --- round trips, generated ---------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
times = st.floats(min_value=0, max_value=4e9, allow_nan=False)
names = st.text(
    st.characters(codec="utf-8", exclude_categories=("C", "Z")), min_size=1, max_size=100
)
figures = st.dictionaries(
    st.text(max_size=20),
    st.none() | finite | st.integers(-(10**12), 10**12) | st.text(max_size=30),
    max_size=14,
)


@st.composite
def plans(draw: st.DrawFn) -> RolloutPlan:
    first = draw(st.integers(1, 999))  # tenths of a percent; the first below 100 %
    rest = sorted(draw(st.sets(st.integers(first + 1, 1000), max_size=19)))
    steps = [tenths / 10 for tenths in (first, *rest)]
    shadow = draw(
        st.none()
        | st.builds(
            ShadowPhase,
            percent=st.floats(0.01, 100),
            min_agreement=st.floats(0, 1),
            min_requests=st.integers(1, 10**6),
        )
    )
    return plan(
        id=draw(st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)),
        model=draw(st.text(min_size=1, max_size=80)),
        control=draw(st.sampled_from(["Production", "Staging", "@champion", "@a-b_c"])),
        candidate=draw(st.sampled_from(["@challenger", "12", "None", "@z"])),
        candidate_version=draw(st.integers(1, 10**9)),
        created_at=draw(times),
        steps=tuple(steps),
        min_step_seconds=draw(st.floats(0, 1e6)),
        min_step_requests=draw(st.integers(1, 10**9)),
        gates=Gates(draw(st.floats(0, 1)), draw(st.floats(1, 1e3)), draw(st.booleans())),
        shadow=shadow,
        require_approval=draw(st.booleans()),
        sticky=draw(st.booleans()),
    )


@st.composite
def rollouts(draw: st.DrawFn) -> Rollout:
    p = draw(plans())
    phase = draw(st.sampled_from([ph for ph in Phase if ph is not Phase.SHADOW or p.shadow]))
    step = 0 if phase is Phase.SHADOW else draw(st.integers(0, len(p.steps) - 1))
    history = draw(
        st.lists(
            st.builds(
                Decision,
                revision=st.integers(1, 10**6),
                at=times,
                move=st.sampled_from(MoveKind),
                phase=st.sampled_from(Phase),
                step=st.integers(0, 19),
                by=names,
                reason=st.text(max_size=200),
                failed=st.lists(st.text(min_size=1, max_size=20), max_size=5).map(tuple),
                figures=figures,
            ),
            max_size=MAX_HISTORY,
        )
    )
    reference = draw(
        st.none()
        | st.builds(
            ControlFigures,
            requests=st.integers(0, 10**9),
            error_rate=st.floats(0, 1),
            p99=st.none() | st.floats(0, 100),
            rewards=st.builds(
                RewardSummary,
                count=st.integers(0, 10**6),
                total=finite,
                total_sq=finite,
                non_binary=st.integers(0, 10**6),
            ),
        )
    )
    s = RolloutState(
        phase=phase,
        step=step,
        step_started_at=draw(times),
        revision=draw(st.integers(1, 10**6)),
        approval=draw(st.none() | st.builds(Approval, by=names, at=times)),
        reference=reference,
        history=tuple(history),
        dropped=draw(st.integers(0, 10**6)),
    )
    return Rollout(p, s)


@settings(max_examples=30, deadline=None, database=None, derandomize=True)
@given(rollouts())
def test_every_rollout_encodes_within_the_limit_and_decodes_back(rollout: Rollout) -> None:
    text = encode_rollout(rollout)
    assert len(text) <= MAX_TAG_CHARS
    back = decode_rollout(text)
    assert back.plan == rollout.plan
    kept, given_state = back.state, rollout.state
    assert dataclasses.replace(kept, history=(), dropped=0) == dataclasses.replace(
        given_state, history=(), dropped=0
    )
    assert kept.dropped + len(kept.history) == given_state.dropped + len(given_state.history)
    if given_state.history:
        assert kept.history[-1].revision == given_state.history[-1].revision
    if len(_plain(rollout)) <= MAX_TAG_CHARS:
        assert back == rollout
    assert encode_rollout(back) == text


def _plain(rollout: Rollout) -> str:
    """What the text would be without thinning: the same dump, unbounded."""
    from service.rollouts import rollout_tag

    return rollout_tag._dump(rollout.plan, rollout.state)
