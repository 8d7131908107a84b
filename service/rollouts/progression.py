"""The rollout's state machine, pure: from the plan, the state, the gates' verdict on the
current step and the time, the next move and the state it leads to; and the traffic
policy each state asks the gateways to follow.

Moves: HOLD (nothing written), FINISH_SHADOW (shadow passed -> first step), ADVANCE
(step i passed -> step i+1), AWAIT_APPROVAL (last step passed, approval required),
PROMOTE (last step passed, or approved), ROLL_BACK (any gate failed, at once, from any
live phase), and the operator's APPROVE and ABORT. A step passes when its gates pass
and it has lasted ``min_step_seconds``; a failed gate never waits for the minimum.

Keys: every move records the plan's id and the revision it was computed from, and its
state has the next revision. ``is_current(stored, move)``: the stored rollout is still
the one the move was computed from, so it may be written (checked right before the
write); ``is_applied(stored, move)``: the stored state is this move's (checked after
the write; another writer in between means this move lost and its effects must not
follow). The traffic policy is a function of the stored state (``policy_for``), so
whoever reads the state writes the same policy.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

from registry_watcher.traffic_policy import TrafficPolicy, policy_from_dict
from service.experiments.results import ExperimentResult
from service.rollouts.gates import (
    Figure,
    GateVerdict,
    Matchup,
    Outcome,
    evaluate,
    evaluate_shadow,
)
from service.rollouts.rollout_plan import (
    MAX_HISTORY,
    MAX_NAME_CHARS,
    MAX_REASON_CHARS,
    Approval,
    Decision,
    MoveKind,
    Phase,
    Rollout,
    RolloutPlan,
    RolloutState,
)
from service.rollouts.tag_fields import RolloutError, number_out


@dataclass(frozen=True)
class Move:
    """A move computed from revision ``from_revision`` of plan ``plan_id``; ``state``: the
    state after it (the same state for HOLD); ``verdict``: what decided it, if gates did."""

    kind: MoveKind
    plan_id: str
    from_revision: int
    state: RolloutState
    reason: str
    verdict: GateVerdict | None = None

    @property
    def writes(self) -> bool:
        return self.kind is not MoveKind.HOLD

    @property
    def decision(self) -> Decision | None:
        """The history entry this move adds (None for HOLD)."""
        return self.state.history[-1] if self.writes else None


def start_rollout(
    plan: RolloutPlan, now: float, by: str, existing: Rollout | None = None
) -> Rollout:
    """A new rollout's first state; refused while ``existing`` is still live."""
    if existing is not None and not existing.state.finished:
        raise RolloutError(
            f"model {plan.model}: rollout {existing.plan.id} is still in phase "
            f"{existing.state.phase}; abort it first"
        )
    phase = Phase.SHADOW if plan.shadow else Phase.STEP
    first = "a shadow phase" if plan.shadow else f"{number_out(plan.steps[0])} %"
    steps = "/".join(str(number_out(p)) for p in plan.steps)
    reason = (
        f"started: {plan.candidate} v{plan.candidate_version} against {plan.control}, "
        f"steps {steps} %, first {first}"
    )
    empty = RolloutState(phase=phase, step=0, step_started_at=now, revision=0)
    state = _record(empty, MoveKind.START, now, by, reason, phase=phase)
    return Rollout(plan, state)


def judge(plan: RolloutPlan, state: RolloutState, result: ExperimentResult) -> GateVerdict:
    """The gates' verdict on the current phase and step, from the experiment's results
    over the step (its window should start when the step's policy was applied)."""
    if state.finished:
        return GateVerdict(Outcome.WAITING, f"the rollout is over ({state.phase})")
    matchup = Matchup(plan.candidate, plan.candidate_version, plan.control)
    if state.phase is Phase.SHADOW:
        assert plan.shadow is not None  # Rollout checks it
        return evaluate_shadow(
            plan.gates,
            result,
            matchup,
            min_requests=plan.shadow.min_requests,
            min_agreement=plan.shadow.min_agreement,
        )
    control_share = 100 - plan.steps[state.step]
    reference = state.reference if control_share <= 0 else None
    return evaluate(
        plan.gates, result, matchup, min_requests=plan.min_step_requests, reference=reference
    )


def next_move(
    plan: RolloutPlan, state: RolloutState, verdict: GateVerdict, now: float, by: str
) -> Move:
    """The move ``verdict`` (on the current step) calls for at ``now``; ``by``: who
    decides (the controller's name), recorded in the history."""
    if state.finished:
        return _hold(plan, state, f"the rollout is over ({state.phase})")
    if verdict.outcome is Outcome.FAILED:
        return _move(plan, state, MoveKind.ROLL_BACK, now, by, verdict, phase=Phase.ROLLED_BACK)
    if state.phase is Phase.AWAITING_APPROVAL:
        if state.approval is None:
            return _hold(plan, state, f"awaiting approval: stageserve rollout approve {plan.model}")
        return _move(plan, state, MoveKind.PROMOTE, now, by, verdict, phase=Phase.PROMOTED)
    if verdict.outcome is Outcome.WAITING:
        return _hold(plan, state, verdict.reason)
    left = plan.min_step_seconds - (now - state.step_started_at)
    if left > 0:
        return _hold(plan, state, f"every gate passed; the step lasts {left:.0f} s more")
    if state.phase is Phase.SHADOW:
        return _move(plan, state, MoveKind.FINISH_SHADOW, now, by, verdict, step=0)
    if state.step + 1 < len(plan.steps):
        return _move(plan, state, MoveKind.ADVANCE, now, by, verdict, step=state.step + 1)
    if plan.require_approval:
        kind, phase = MoveKind.AWAIT_APPROVAL, Phase.AWAITING_APPROVAL
        return _move(plan, state, kind, now, by, verdict, phase=phase)
    return _move(plan, state, MoveKind.PROMOTE, now, by, verdict, phase=Phase.PROMOTED)


def approve(plan: RolloutPlan, state: RolloutState, approval: Approval) -> Move:
    """Record ``approval``; the controller promotes at its next move. Only a rollout
    that requires approval and is awaiting it can be approved: an approval attests
    to every step's results, so it cannot be given before they are known."""
    if not plan.require_approval:
        raise RolloutError(f"rollout {plan.id} does not require approval")
    if state.phase is not Phase.AWAITING_APPROVAL:
        raise RolloutError(f"rollout {plan.id} is not awaiting approval: {describe(plan, state)}")
    if state.approval is not None:
        raise RolloutError(
            f"rollout {plan.id} is already approved by {state.approval.by}; it promotes next"
        )
    reason = f"approved by {approval.by}"
    approved = dataclasses.replace(state, approval=approval)
    return _move(plan, approved, MoveKind.APPROVE, approval.at, approval.by, None, reason=reason)


def abort(plan: RolloutPlan, state: RolloutState, now: float, by: str, why: str = "") -> Move:
    """Stop a live rollout: traffic back to the control, nothing promoted."""
    if state.finished:
        raise RolloutError(f"rollout {plan.id} is already over ({state.phase})")
    reason = f"aborted by {by}" + (f": {why}" if why else "")
    return _move(plan, state, MoveKind.ABORT, now, by, None, phase=Phase.ABORTED, reason=reason)


def is_current(stored: Rollout | None, move: Move) -> bool:
    """Whether ``move`` may still be written: the stored rollout is the plan and the
    revision it was computed from (else another writer has moved it on: drop the move)."""
    return (
        stored is not None
        and stored.plan.id == move.plan_id
        and stored.state.revision == move.from_revision
    )


def is_applied(stored: Rollout | None, move: Move) -> bool:
    """Whether the stored state is the one ``move`` wrote (its revision, time and author)."""
    decision = move.decision
    if stored is None or decision is None or not stored.state.history:
        return False
    last = stored.state.history[-1]
    return (
        stored.plan.id == move.plan_id
        and stored.state.revision == move.state.revision
        and (last.revision, last.at, last.by) == (decision.revision, decision.at, decision.by)
    )


def describe(plan: RolloutPlan, state: RolloutState) -> str:
    """Where the rollout stands, in words: 'step 2 of 4 (25 %)', 'shadow (10 %)', ..."""
    if state.phase is Phase.SHADOW:
        assert plan.shadow is not None
        return f"shadow phase ({number_out(plan.shadow.percent)} % mirrored)"
    place = f"step {state.step + 1} of {len(plan.steps)} ({number_out(plan.steps[state.step])} %)"
    if state.phase is Phase.STEP:
        return place
    if state.phase is Phase.AWAITING_APPROVAL:
        return f"awaiting approval after {place}"
    return f"{state.phase} at {place}"


# --- traffic policies ---------------------------------------------------------------


def step_policy(plan: RolloutPlan, step: int) -> TrafficPolicy:
    """Step ``step``: the candidate at its percent, the control (first, so it stays the
    experiment's control even at 0) at the rest. Sticky keys that reach the candidate
    stay on it at later steps: the router lays buckets in policy order, so the
    candidate's range only grows."""
    percent = plan.steps[step]
    weights = {plan.control: number_out(100 - percent), plan.candidate: number_out(percent)}
    return policy_from_dict({"weights": weights, "sticky": plan.sticky})


def shadow_policy(plan: RolloutPlan) -> TrafficPolicy:
    """The shadow phase: every answer from the control, a share mirrored to the candidate."""
    assert plan.shadow is not None
    mirror = {"target": plan.candidate, "percent": number_out(plan.shadow.percent)}
    return policy_from_dict(
        {"weights": {plan.control: 100}, "sticky": plan.sticky, "shadow": mirror}
    )


def control_only_policy(plan: RolloutPlan) -> TrafficPolicy:
    """Everything to the control: the rollback policy, and the reset after promotion,
    when the control IS the candidate version (the stage or alias now names it)."""
    return policy_from_dict({"weights": {plan.control: 100}})


def policy_for(plan: RolloutPlan, state: RolloutState) -> TrafficPolicy:
    """The policy the gateways must follow in ``state`` (awaiting approval: the last
    step's). Write it whenever the policy tag differs: idempotent across writers."""
    if state.phase is Phase.SHADOW:
        return shadow_policy(plan)
    if state.phase in (Phase.STEP, Phase.AWAITING_APPROVAL):
        return step_policy(plan, state.step)
    return control_only_policy(plan)


# --- making moves -------------------------------------------------------------------


def _hold(plan: RolloutPlan, state: RolloutState, reason: str) -> Move:
    return Move(MoveKind.HOLD, plan.id, state.revision, state, reason)


def _move(
    plan: RolloutPlan,
    state: RolloutState,
    kind: MoveKind,
    now: float,
    by: str,
    verdict: GateVerdict | None,
    *,
    phase: Phase | None = None,
    step: int | None = None,
    reason: str | None = None,
) -> Move:
    """A writing move: the new state (revision + 1, the decision recorded). A new
    ``step`` (phase STEP) starts its clock and keeps the control's live figures as the
    reference; without ``phase`` or ``step`` the phase stays."""
    if step is not None:
        reference = (verdict.control if verdict else None) or state.reference
        state = dataclasses.replace(state, step_started_at=now, reference=reference)
        phase = Phase.STEP
    why = reason if reason is not None else verdict.reason if verdict else kind.value
    new = _record(
        state,
        kind,
        now,
        by,
        why,
        phase=phase or state.phase,
        step=state.step if step is None else step,
        verdict=verdict,
    )
    return Move(kind, plan.id, state.revision, new, why, verdict)


def _record(
    state: RolloutState,
    kind: MoveKind,
    now: float,
    by: str,
    reason: str,
    *,
    phase: Phase,
    step: int = 0,
    verdict: GateVerdict | None = None,
) -> RolloutState:
    """``state`` moved to ``phase``/``step`` at the next revision, the decision appended
    (the oldest beyond MAX_HISTORY dropped and counted)."""
    revision = state.revision + 1
    decision = Decision(
        revision=revision,
        at=now,
        move=kind,
        phase=phase,
        step=step,
        by=by[:MAX_NAME_CHARS] or "unknown",
        reason=reason[:MAX_REASON_CHARS],
        failed=verdict.failed if verdict else (),
        figures=compact_figures(verdict.figures) if verdict else {},
    )
    history = (*state.history, decision)
    extra = max(0, len(history) - MAX_HISTORY)
    return dataclasses.replace(
        state,
        phase=phase,
        step=step,
        revision=revision,
        history=history[extra:],
        dropped=state.dropped + extra,
    )


def compact_figures(figures: Mapping[str, Figure]) -> dict[str, Figure]:
    """Figures as the history keeps them: 6 significant digits, unknowns left out,
    a non-finite number as its text ("inf") since JSON has none."""
    out: dict[str, Figure] = {}
    for key, value in figures.items():
        if value is None:
            continue
        if isinstance(value, float):
            out[key] = float(f"{value:.6g}") if math.isfinite(value) else str(value)
        else:
            out[key] = value
    return out
