"""service/rollouts/progression.py: the rollout's state machine, its keyed moves, and the
traffic policy of every state; verdicts come from results made by the real
experiments code."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from registry_watcher.targets import parse_target
from registry_watcher.traffic_policy import Shadow
from service.experiments.results import ExperimentResult
from service.rollouts.gates import ERROR_RATE, Outcome
from service.rollouts.progression import (
    Move,
    abort,
    approve,
    compact_figures,
    control_only_policy,
    describe,
    is_applied,
    is_current,
    judge,
    next_move,
    policy_for,
    shadow_policy,
    start_rollout,
    step_policy,
)
from service.rollouts.rollout_plan import (
    Approval,
    MoveKind,
    Phase,
    Rollout,
    RolloutPlan,
    RolloutState,
    ShadowPhase,
)
from service.rollouts.rollout_tag import decode_rollout, encode_rollout
from service.rollouts.tag_fields import RolloutError
from tests.unit.rollout_results import binary, step_result

T0 = 1_764_500_000.0
BOT = "controller@host:1"
PROD, STAGING = parse_target("Production"), parse_target("Staging")


def plan(**changes: Any) -> RolloutPlan:
    fields: dict[str, Any] = {
        "id": "p1",
        "model": "churn",
        "control": "Production",
        "candidate": "Staging",
        "candidate_version": 7,
        "created_at": T0,
        "min_step_seconds": 60,
        "min_step_requests": 100,
    }
    return RolloutPlan(**(fields | changes))


GOOD = step_result()
BAD = step_result(candidate_errors=50)
FEW = step_result(candidate_requests=10)
SHADOW_GOOD = step_result(candidate_requests=0, shadow={"agree": 200})
SHADOW_BAD = step_result(candidate_requests=0, shadow={"agree": 100, "disagree": 100})


def tick(p: RolloutPlan, s: RolloutState, result: ExperimentResult, now: float) -> Move:
    return next_move(p, s, judge(p, s, result), now, BOT)


def at_step(p: RolloutPlan, step: int, **changes: Any) -> RolloutState:
    """A state reached by passing every step before ``step``."""
    s = start_rollout(p, T0, "ana").state
    now = T0
    while s.phase is Phase.SHADOW or s.step < step:
        now += p.min_step_seconds
        s = tick(p, s, SHADOW_GOOD if s.phase is Phase.SHADOW else GOOD, now).state
    return dataclasses.replace(s, **changes)


# --- starting -----------------------------------------------------------------------


def test_start_records_the_first_decision() -> None:
    rollout = start_rollout(plan(), T0, "ana")
    s = rollout.state
    assert (s.phase, s.step, s.step_started_at, s.revision) == (Phase.STEP, 0, T0, 1)
    assert (s.approval, s.reference, s.dropped) == (None, None, 0)
    (first,) = s.history
    assert (first.revision, first.at, first.move, first.by) == (1, T0, MoveKind.START, "ana")
    assert first.reason == "started: Staging v7 against Production, steps 5/25/50/100 %, first 5 %"


def test_start_with_a_shadow_phase() -> None:
    s = start_rollout(plan(shadow=ShadowPhase(percent=20)), T0, "ana").state
    assert (s.phase, s.step) == (Phase.SHADOW, 0)
    assert s.history[0].reason.endswith("first a shadow phase")


def test_a_live_rollout_blocks_a_new_one() -> None:
    live = start_rollout(plan(), T0, "ana")
    with pytest.raises(RolloutError, match=r"^model churn: rollout p1 is still in phase step"):
        start_rollout(plan(id="p2"), T0 + 1, "ana", existing=live)
    over = Rollout(live.plan, abort(live.plan, live.state, T0 + 2, "ana").state)
    assert start_rollout(plan(id="p2"), T0 + 3, "ana", existing=over).plan.id == "p2"


# --- judging the current step -------------------------------------------------------


def test_judge_uses_the_shadow_gates_in_the_shadow_phase() -> None:
    p = plan(shadow=ShadowPhase(percent=20, min_agreement=0.9, min_requests=50))
    s = start_rollout(p, T0, "ana").state
    assert judge(p, s, SHADOW_GOOD).figures["shadow_agreement"] == 1.0
    assert judge(p, s, SHADOW_BAD).outcome is Outcome.FAILED
    assert judge(p, s, GOOD).outcome is Outcome.WAITING  # nothing mirrored


def test_judge_uses_the_reference_at_a_step_without_control_traffic() -> None:
    p = plan()
    s = at_step(p, 3)
    assert s.reference is not None and s.reference.requests == 1000
    no_control = step_result(control_requests=0)
    verdict = judge(p, s, no_control)
    assert verdict.outcome is Outcome.PASSED
    assert verdict.figures["control_source"] == "reference"
    at_50 = at_step(p, 2)
    assert judge(p, at_50, no_control).outcome is Outcome.WAITING  # the control must be live


def test_judge_of_a_finished_rollout_waits() -> None:
    p = plan()
    s = abort(p, at_step(p, 1), T0, "ana").state
    assert judge(p, s, BAD).outcome is Outcome.WAITING


def test_judge_counts_only_the_pinned_candidate_version() -> None:
    p = plan()
    s = at_step(p, 0)
    other = step_result(candidate_version=8, candidate_errors=500)
    assert judge(p, s, other).outcome is Outcome.WAITING


# --- moves --------------------------------------------------------------------------


def test_waiting_holds_and_writes_nothing() -> None:
    p, s = plan(), at_step(plan(), 0)
    move = tick(p, s, FEW, T0 + 1000)
    assert (move.kind, move.writes, move.decision) == (MoveKind.HOLD, False, None)
    assert move.state is s
    assert move.reason == "Staging v7: 10 of 100 requests"


def test_passing_holds_until_the_step_has_lasted_its_minimum() -> None:
    p, s = plan(), at_step(plan(), 0)
    move = tick(p, s, GOOD, T0 + 15)
    assert move.kind is MoveKind.HOLD
    assert move.reason == "every gate passed; the step lasts 45 s more"
    assert tick(p, s, GOOD, T0 + 60).kind is MoveKind.ADVANCE


def test_advance_starts_the_next_step() -> None:
    p, s = plan(), at_step(plan(), 0)
    move = tick(p, s, GOOD, T0 + 61)
    new = move.state
    assert (move.kind, move.plan_id, move.from_revision) == (MoveKind.ADVANCE, "p1", 1)
    assert (new.phase, new.step, new.step_started_at, new.revision) == (Phase.STEP, 1, T0 + 61, 2)
    assert new.reference is not None and new.reference.requests == 1000
    decision = move.decision
    assert decision is not None and decision == new.history[-1]
    assert (decision.revision, decision.move, decision.step, decision.by) == (2, "advance", 1, BOT)
    assert decision.figures["p99_ratio"] == 1.0
    assert move.verdict is not None and move.verdict.outcome is Outcome.PASSED


def test_a_failed_gate_rolls_back_at_once() -> None:
    p, s = plan(), at_step(plan(), 1)
    move = tick(p, s, BAD, s.step_started_at + 1)  # long before the step's minimum
    assert move.kind is MoveKind.ROLL_BACK
    assert (move.state.phase, move.state.step) == (Phase.ROLLED_BACK, 1)
    decision = move.decision
    assert decision is not None
    assert decision.failed == (ERROR_RATE,)
    assert decision.reason == "failed: error rate +0.05"
    assert decision.figures["error_rate_increase"] == 0.05


def test_a_failed_shadow_rolls_back() -> None:
    p = plan(shadow=ShadowPhase(percent=20))
    s = start_rollout(p, T0, "ana").state
    move = tick(p, s, SHADOW_BAD, T0 + 1)
    assert (move.kind, move.state.phase) == (MoveKind.ROLL_BACK, Phase.ROLLED_BACK)


def test_finishing_the_shadow_starts_the_first_step() -> None:
    p = plan(shadow=ShadowPhase(percent=20))
    s = start_rollout(p, T0, "ana").state
    assert tick(p, s, SHADOW_GOOD, T0 + 59).kind is MoveKind.HOLD
    move = tick(p, s, SHADOW_GOOD, T0 + 60)
    assert move.kind is MoveKind.FINISH_SHADOW
    assert (move.state.phase, move.state.step, move.state.step_started_at) == (
        Phase.STEP,
        0,
        T0 + 60,
    )
    assert move.state.reference is not None  # the control, measured during the shadow


def test_the_last_step_promotes() -> None:
    p = plan()
    s = at_step(p, 3)
    move = tick(p, s, step_result(control_requests=0), s.step_started_at + 60)
    assert (move.kind, move.state.phase, move.state.step) == (MoveKind.PROMOTE, Phase.PROMOTED, 3)


def test_approval_is_awaited_then_promotes() -> None:
    p = plan(require_approval=True, steps=(10, 50))
    s = at_step(p, 1)
    waiting = tick(p, s, GOOD, s.step_started_at + 60)
    assert (waiting.kind, waiting.state.phase) == (MoveKind.AWAIT_APPROVAL, Phase.AWAITING_APPROVAL)
    s = waiting.state
    hold = tick(p, s, GOOD, T0 + 10_000)
    assert (hold.kind, hold.reason) == (
        MoveKind.HOLD,
        "awaiting approval: stageserve rollout approve churn",
    )
    approved = approve(p, s, Approval(by="ana", at=T0 + 10_001))
    assert approved.kind is MoveKind.APPROVE
    assert approved.state.approval == Approval(by="ana", at=T0 + 10_001)
    assert approved.state.revision == s.revision + 1
    assert approved.state.phase is Phase.AWAITING_APPROVAL
    assert approved.decision is not None and approved.decision.by == "ana"
    promote = tick(p, approved.state, FEW, T0 + 10_002)  # waiting data does not block it
    assert (promote.kind, promote.state.phase) == (MoveKind.PROMOTE, Phase.PROMOTED)


def test_a_failed_gate_while_awaiting_approval_rolls_back_even_if_approved() -> None:
    p = plan(require_approval=True, steps=(10, 50))
    s = at_step(p, 1)
    s = tick(p, s, GOOD, s.step_started_at + 60).state
    s = approve(p, s, Approval(by="ana", at=T0 + 500)).state
    move = tick(p, s, BAD, T0 + 501)
    assert (move.kind, move.state.phase) == (MoveKind.ROLL_BACK, Phase.ROLLED_BACK)


def test_approval_is_refused_outside_its_phase() -> None:
    p = plan(require_approval=True)
    s = at_step(p, 1)
    with pytest.raises(
        RolloutError, match=r"^rollout p1 is not awaiting approval: step 2 of 4 \(25 %\)"
    ):
        approve(p, s, Approval(by="ana", at=T0))
    with pytest.raises(RolloutError, match=r"^rollout p1 does not require approval"):
        approve(plan(), at_step(plan(), 1), Approval(by="ana", at=T0))
    awaiting = dataclasses.replace(s, phase=Phase.AWAITING_APPROVAL)
    once = approve(p, awaiting, Approval(by="ana", at=T0)).state
    with pytest.raises(RolloutError, match=r"^rollout p1 is already approved by ana"):
        approve(p, once, Approval(by="bo", at=T0))


def test_abort() -> None:
    p = plan()
    s = at_step(p, 2)
    move = abort(p, s, T0 + 5, "ana", "wrong candidate")
    assert (move.kind, move.state.phase, move.state.step) == (MoveKind.ABORT, Phase.ABORTED, 2)
    assert move.decision is not None
    assert move.decision.reason == "aborted by ana: wrong candidate"
    with pytest.raises(RolloutError, match=r"^rollout p1 is already over \(aborted\)"):
        abort(p, move.state, T0 + 6, "ana")


@pytest.mark.parametrize("phase", [Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED])
@pytest.mark.parametrize("result", [GOOD, BAD, FEW])
def test_terminal_phases_stay_terminal(phase: Phase, result: ExperimentResult) -> None:
    p = plan()
    s = dataclasses.replace(at_step(p, 3), phase=phase)
    move = tick(p, s, result, T0 + 10**6)
    assert (move.kind, move.state) == (MoveKind.HOLD, s)


def test_history_is_bounded_and_counts_what_it_drops() -> None:
    from service.rollouts.rollout_plan import MAX_HISTORY

    p = plan(require_approval=True)
    s = dataclasses.replace(at_step(p, 1), phase=Phase.AWAITING_APPROVAL)
    for i in range(MAX_HISTORY + 5):  # approvals are the cheapest writes to repeat
        s = approve(p, dataclasses.replace(s, approval=None), Approval("ana", T0 + i)).state
    assert len(s.history) == MAX_HISTORY
    assert s.dropped == s.revision - MAX_HISTORY
    assert [d.revision for d in s.history] == list(
        range(s.revision - MAX_HISTORY + 1, s.revision + 1)
    )


def test_compact_figures() -> None:
    figures = {"a": 0.123456789, "b": None, "c": 12, "d": "welch", "e": float("inf"), "f": 1e-12}
    assert compact_figures(figures) == {
        "a": 0.123457,
        "c": 12,
        "d": "welch",
        "e": "inf",
        "f": 1e-12,
    }


def test_describe() -> None:
    p = plan(shadow=ShadowPhase(percent=12.5))
    s = start_rollout(p, T0, "ana").state
    assert describe(p, s) == "shadow phase (12.5 % mirrored)"
    assert describe(p, dataclasses.replace(s, phase=Phase.STEP, step=2)) == "step 3 of 4 (50 %)"
    awaiting = dataclasses.replace(s, phase=Phase.AWAITING_APPROVAL, step=3)
    assert describe(p, awaiting) == "awaiting approval after step 4 of 4 (100 %)"
    done = dataclasses.replace(s, phase=Phase.ROLLED_BACK, step=1)
    assert describe(p, done) == "rolled_back at step 2 of 4 (25 %)"


# --- keys: stale moves and two controllers ------------------------------------------


def stored(p: RolloutPlan, s: RolloutState) -> Rollout:
    """What a registry read gives back: the state through the tag's text."""
    return decode_rollout(encode_rollout(Rollout(p, s)))


def test_a_move_from_an_older_revision_is_stale() -> None:
    p, s = plan(), at_step(plan(), 0)
    first = tick(p, s, GOOD, T0 + 61)
    assert is_current(stored(p, s), first)
    after = stored(p, first.state)
    assert not is_current(after, first)  # written already: recomputing it would be stale
    assert is_applied(after, first)
    second = tick(p, after.state, GOOD, T0 + 200)
    assert is_current(after, second)


def test_two_controllers_make_one_decision_per_revision() -> None:
    p, s = plan(), at_step(plan(), 1)
    a = next_move(p, s, judge(p, s, GOOD), s.step_started_at + 60, "controller-a")
    b = next_move(p, s, judge(p, s, BAD), s.step_started_at + 61, "controller-b")
    assert (a.kind, b.kind) == (MoveKind.ADVANCE, MoveKind.ROLL_BACK)
    registry = stored(p, s)
    assert is_current(registry, a) and is_current(registry, b)
    registry = stored(p, a.state)  # a writes first
    assert not is_current(registry, b)  # b checks before writing, and drops its move
    assert is_applied(registry, a) and not is_applied(registry, b)
    registry = stored(p, b.state)  # had b written anyway (between a's check and write) ...
    assert not is_applied(registry, a)  # ... a would see that it lost


def test_no_move_is_current_against_another_plan_or_no_tag() -> None:
    p, s = plan(), at_step(plan(), 0)
    move = tick(p, s, GOOD, T0 + 61)
    assert not is_current(None, move)
    assert not is_current(stored(plan(id="other"), s), move)
    assert not is_applied(None, move)
    assert not is_applied(stored(plan(id="other"), move.state), move)
    hold = tick(p, s, FEW, T0 + 61)
    assert not is_applied(stored(p, s), hold)


# --- traffic policies ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "weights"), [(0, (95, 5)), (1, (75, 25)), (2, (50, 50)), (3, (0, 100))]
)
def test_step_policies_keep_the_control_first(step: int, weights: tuple[int, int]) -> None:
    policy = step_policy(plan(sticky=True), step)
    assert policy.weights == ((PROD, weights[0]), (STAGING, weights[1]))
    assert (policy.sticky, policy.shadow) == (True, None)


def test_fractional_steps() -> None:
    policy = step_policy(plan(steps=(2.5, 100)), 0)
    assert policy.to_json() == '{"weights":{"Production":97.5,"Staging":2.5},"sticky":false}'


def test_shadow_policy() -> None:
    policy = shadow_policy(plan(shadow=ShadowPhase(percent=20)))
    assert policy.weights == ((PROD, 100),)
    assert policy.shadow == Shadow(STAGING, 20)


def test_control_only_policy_is_the_rollback_and_the_reset() -> None:
    policy = control_only_policy(plan(control="@champion", candidate="@challenger", sticky=True))
    assert policy.to_json() == '{"weights":{"@champion":100},"sticky":false}'


def test_policy_for_each_phase() -> None:
    p = plan(shadow=ShadowPhase(percent=20))
    s = start_rollout(p, T0, "ana").state
    assert policy_for(p, s) == shadow_policy(p)
    for step in range(4):
        live = dataclasses.replace(s, phase=Phase.STEP, step=step)
        assert policy_for(p, live) == step_policy(p, step)
    awaiting = dataclasses.replace(s, phase=Phase.AWAITING_APPROVAL, step=3)
    assert policy_for(p, awaiting) == step_policy(p, 3)
    for phase in (Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED):
        assert policy_for(p, dataclasses.replace(s, phase=phase)) == control_only_policy(p)


# --- random runs --------------------------------------------------------------------

RESULTS = {
    "pass": GOOD,
    "fail": BAD,
    "wait": FEW,
    "slow": step_result(candidate_seconds=0.4),
    "worse": step_result(control_rewards=binary(500, 1000), candidate_rewards=binary(400, 1000)),
}
WORDS = ["pass"] * 12 + ["wait"] * 3 + ["fail", "slow", "worse"]  # most runs get far
SHADOW_RESULTS = {
    "pass": SHADOW_GOOD,
    "fail": SHADOW_BAD,
    "wait": step_result(candidate_requests=0),
}


@st.composite
def runs(draw: st.DrawFn) -> tuple[RolloutPlan, list[tuple[str, float, bool]]]:
    steps = sorted(
        draw(st.sets(st.sampled_from([1, 5, 10, 25, 50, 75, 100]), min_size=1, max_size=5))
    )
    if steps[0] == 100:
        steps = [50, 100]
    p = plan(
        steps=tuple(steps),
        min_step_seconds=draw(st.sampled_from([0, 30, 60])),
        shadow=draw(st.none() | st.just(ShadowPhase(percent=10))),
        require_approval=draw(st.booleans()),
    )
    ticks = draw(
        st.lists(
            st.tuples(
                st.sampled_from(WORDS),
                st.sampled_from([0.0, 10.0, 30.0, 60.0]),
                st.booleans(),  # try to approve before this tick
            ),
            max_size=40,
        )
    )
    return p, ticks


@settings(max_examples=120, deadline=None, database=None, derandomize=True)
@given(runs())
def test_random_runs_keep_the_rules(run: tuple[RolloutPlan, list[tuple[str, float, bool]]]) -> None:
    p, ticks = run
    s = start_rollout(p, T0, "ana").state
    now, passed_steps = T0, set()
    for word, wait, try_approval in ticks:
        now += wait
        if try_approval:
            try:
                approved = approve(p, s, Approval("ana", now))
            except RolloutError:
                assert not (
                    s.phase is Phase.AWAITING_APPROVAL and s.approval is None and p.require_approval
                )
            else:
                assert s.phase is Phase.AWAITING_APPROVAL
                assert approved.from_revision == s.revision
                s = approved.state
        result = (
            SHADOW_RESULTS.get(word, SHADOW_RESULTS["pass"])
            if s.phase is Phase.SHADOW
            else RESULTS[word]
        )
        verdict = judge(p, s, result)
        move = next_move(p, s, verdict, now, BOT)
        new = move.state
        if s.finished:  # terminal phases stay terminal
            assert (move.kind, new) == (MoveKind.HOLD, s)
        elif verdict.outcome is Outcome.FAILED:  # a failed gate rolls back at once
            assert (move.kind, new.phase) == (MoveKind.ROLL_BACK, Phase.ROLLED_BACK)
        if move.writes:
            assert new.revision == s.revision + 1 == move.from_revision + 1
            assert new.history[-1].revision == new.revision
        else:
            assert new == s
        if move.kind is MoveKind.ADVANCE:  # never skips a step
            assert new.step == s.step + 1 and new.phase is Phase.STEP
            assert verdict.outcome is Outcome.PASSED
            passed_steps.add(s.step)
        if move.kind is MoveKind.FINISH_SHADOW:
            assert (s.phase, new.step) == (Phase.SHADOW, 0)
        if move.kind in (MoveKind.AWAIT_APPROVAL, MoveKind.PROMOTE) and s.phase is Phase.STEP:
            assert verdict.outcome is Outcome.PASSED and s.step == len(p.steps) - 1
            passed_steps.add(s.step)
        if move.kind is MoveKind.PROMOTE:  # every step passed, and approved when required
            assert passed_steps == set(range(len(p.steps)))
            assert (new.approval is not None) == p.require_approval
            event(f"promoted (approval required: {p.require_approval})")
        if move.kind is MoveKind.ADVANCE or move.kind is MoveKind.FINISH_SHADOW:
            assert now - s.step_started_at >= p.min_step_seconds
        s = new
    event(f"ended {s.phase}")
    assert decode_rollout(encode_rollout(Rollout(p, s))).state.revision == s.revision
    moves = [d.move for d in s.history]
    assert moves[0] is MoveKind.START and moves.count(MoveKind.START) == 1
    assert (
        sum(d.move in (MoveKind.PROMOTE, MoveKind.ROLL_BACK, MoveKind.ABORT) for d in s.history)
        <= 1
    )
