"""The rollout as ONE registered-model tag, ``stageserve.rollout``: compact, stable JSON
(equal rollouts give equal text), read back with errors that name the field.

Size: MLflow's API accepts registered-model tag values up to 100,000 characters
(``MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH``, mlflow 3.17), but its SQL store keeps them in
a ``VARCHAR(5000)`` column (``registered_model_tags.value``; only model-version tags
were widened to TEXT), which MySQL and PostgreSQL enforce. So the text is kept within
MAX_TAG_CHARS = 5000: when the history does not fit, the oldest entries lose their
figures first, then the oldest entries are dropped (``state.dropped`` counts them);
the newest entry is always kept. The JSON is ASCII (``\\uXXXX`` escapes), so characters
and bytes are the same count.

    {"v":1,"plan":{"id":..,"model":..,"control":"Production","candidate":"Staging",
     "candidate_version":7,"created_at":..,"steps":[5,25,50,100],"min_step_seconds":60,
     "min_step_requests":100,"gates":{"max_error_rate_increase":0.01,"max_p99_ratio":1.5,
     "reward_not_worse":true},"shadow":null,"require_approval":false,"sticky":false},
     "state":{"phase":"step","step":1,"step_started_at":..,"revision":3,"approval":null,
     "reference":{"requests":..,"error_rate":..,"p99":..,"rewards":{"count":..,"total":..,
     "total_sq":..,"non_binary":..}},"history":[{"rev":..,"at":..,"move":"advance",
     "phase":"step","step":1,"by":..,"reason":..,"failed":[..],"figures":{..}}],"dropped":0}}
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, TypeVar

from service.experiments.reward_stats import RewardSummary
from service.rollouts import tag_fields as f
from service.rollouts.gates import ControlFigures, Figure, Gates
from service.rollouts.rollout_plan import (
    MAX_HISTORY,
    MAX_STEPS,
    Approval,
    Decision,
    MoveKind,
    Phase,
    Rollout,
    RolloutPlan,
    RolloutState,
    ShadowPhase,
)
from service.rollouts.tag_fields import RolloutError

ROLLOUT_TAG = "stageserve.rollout"
MAX_TAG_CHARS = 5000
FORMAT = 1


def encode_rollout(rollout: Rollout) -> str:
    """The tag's text, within MAX_TAG_CHARS (the history thinned as the docstring says)."""
    state = rollout.state
    text = _dump(rollout.plan, state)
    if len(text) > MAX_TAG_CHARS:  # one estimated cut, then exact steps if still over
        state = _cut(state, len(text) - MAX_TAG_CHARS)
        text = _dump(rollout.plan, state)
    while len(text) > MAX_TAG_CHARS:
        thinner = _thinned(state)
        if thinner is None:
            raise RolloutError(
                f"rollout: {len(text)} characters even with one history entry, over the "
                f"registry's limit of {MAX_TAG_CHARS}"
            )
        state = thinner
        text = _dump(rollout.plan, state)
    return text


def decode_rollout(text: str) -> Rollout:
    """The tag's text back to a Rollout; RolloutError names the first wrong field."""
    try:
        obj = json.loads(text)
    except (ValueError, TypeError, RecursionError) as exc:
        raise RolloutError(f"{ROLLOUT_TAG}: not valid JSON ({exc})") from None
    top = f.fields(ROLLOUT_TAG, obj, ("v", "plan", "state"))
    if top["v"] != FORMAT:
        raise RolloutError(f"v: format {f.shown(top['v'])} is not {FORMAT}; a newer stageserve?")
    plan = _in("plan", lambda: _plan(top["plan"]))
    state = _in("state", lambda: _state(top["state"]))
    return _in("", lambda: Rollout(plan, state))


# --- to JSON ------------------------------------------------------------------------


def _dump(plan: RolloutPlan, state: RolloutState) -> str:
    obj = {"v": FORMAT, "plan": _plan_json(plan), "state": _state_json(state)}
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def _plan_json(plan: RolloutPlan) -> dict[str, Any]:
    shadow = plan.shadow
    return {
        "id": plan.id,
        "model": plan.model,
        "control": plan.control,
        "candidate": plan.candidate,
        "candidate_version": plan.candidate_version,
        "created_at": plan.created_at,
        "steps": [f.number_out(p) for p in plan.steps],
        "min_step_seconds": f.number_out(plan.min_step_seconds),
        "min_step_requests": plan.min_step_requests,
        "gates": {
            "max_error_rate_increase": f.number_out(plan.gates.max_error_rate_increase),
            "max_p99_ratio": f.number_out(plan.gates.max_p99_ratio),
            "reward_not_worse": plan.gates.reward_not_worse,
        },
        "shadow": None
        if shadow is None
        else {
            "percent": f.number_out(shadow.percent),
            "min_agreement": f.number_out(shadow.min_agreement),
            "min_requests": shadow.min_requests,
        },
        "require_approval": plan.require_approval,
        "sticky": plan.sticky,
    }


def _state_json(state: RolloutState) -> dict[str, Any]:
    approval, ref = state.approval, state.reference
    return {
        "phase": state.phase.value,
        "step": state.step,
        "step_started_at": state.step_started_at,
        "revision": state.revision,
        "approval": None if approval is None else {"by": approval.by, "at": approval.at},
        "reference": None
        if ref is None
        else {
            "requests": ref.requests,
            "error_rate": ref.error_rate,
            "p99": ref.p99,
            "rewards": dataclasses.asdict(ref.rewards),
        },
        "history": [_decision_json(d) for d in state.history],
        "dropped": state.dropped,
    }


def _decision_json(decision: Decision) -> dict[str, Any]:
    out: dict[str, Any] = {
        "rev": decision.revision,
        "at": decision.at,
        "move": decision.move.value,
        "phase": decision.phase.value,
        "step": decision.step,
        "by": decision.by,
        "reason": decision.reason,
    }
    if decision.failed:
        out["failed"] = list(decision.failed)
    if decision.figures:
        out["figures"] = dict(decision.figures)
    return out


def _size(decision: Decision) -> int:
    return len(json.dumps(_decision_json(decision), separators=(",", ":")))


def _cut(state: RolloutState, excess: int) -> RolloutState:
    """The thinning of ``_thinned`` done in one pass, as far as the entries' own sizes
    say ``excess`` characters are saved (the digits of ``dropped`` may still differ)."""
    history = list(state.history)
    for i, decision in enumerate(history[:-1]):
        if excess <= 0:
            break
        if decision.figures:
            bare = dataclasses.replace(decision, figures={})
            excess -= _size(decision) - _size(bare)
            history[i] = bare
    drop = 0
    while excess > 0 and drop < len(history) - 1:
        excess -= _size(history[drop]) + 1  # and its comma
        drop += 1
    return dataclasses.replace(state, history=tuple(history[drop:]), dropped=state.dropped + drop)


def _thinned(state: RolloutState) -> RolloutState | None:
    """One step smaller: the oldest entry with figures loses them, else the oldest entry
    goes (counted); None when only the newest entry is left, without figures."""
    history = list(state.history)
    for i, decision in enumerate(history[:-1]):
        if decision.figures:
            history[i] = dataclasses.replace(decision, figures={})
            return dataclasses.replace(state, history=tuple(history))
    if len(history) > 1:
        return dataclasses.replace(state, history=tuple(history[1:]), dropped=state.dropped + 1)
    if history and history[0].figures:
        return dataclasses.replace(state, history=(dataclasses.replace(history[0], figures={}),))
    return None


# --- from JSON ----------------------------------------------------------------------


def _in(path: str, build: Any) -> Any:
    """Run ``build``; a RolloutError from a constructor gets ``path.`` in front."""
    try:
        return build()
    except RolloutError as exc:
        if not path or str(exc).startswith((f"{path}.", f"{path}:")):
            raise
        raise RolloutError(f"{path}.{exc}") from None


_PLAN_KEYS = (
    "id",
    "model",
    "control",
    "candidate",
    "candidate_version",
    "created_at",
    "steps",
    "min_step_seconds",
    "min_step_requests",
    "gates",
    "shadow",
    "require_approval",
    "sticky",
)
_GATES_KEYS = ("max_error_rate_increase", "max_p99_ratio", "reward_not_worse")
_SHADOW_KEYS = ("percent", "min_agreement", "min_requests")


def _plan(raw: object) -> RolloutPlan:
    """Every key is required: the tag is written by stageserve, which writes them all."""
    obj = f.fields("plan", raw, _PLAN_KEYS)
    steps = f.array("plan.steps", obj["steps"], MAX_STEPS)
    return RolloutPlan(
        id=f.text("plan.id", obj["id"]),
        model=f.text("plan.model", obj["model"]),
        control=f.text("plan.control", obj["control"]),
        candidate=f.text("plan.candidate", obj["candidate"]),
        candidate_version=f.integer("plan.candidate_version", obj["candidate_version"], 1),
        created_at=f.number("plan.created_at", obj["created_at"]),
        steps=tuple(f.number(f"plan.steps[{i}]", p) for i, p in enumerate(steps)),
        min_step_seconds=f.number("plan.min_step_seconds", obj["min_step_seconds"]),
        min_step_requests=f.integer("plan.min_step_requests", obj["min_step_requests"], 1),
        gates=_gates(obj["gates"]),
        shadow=_shadow(obj["shadow"]),
        require_approval=f.flag("plan.require_approval", obj["require_approval"]),
        sticky=f.flag("plan.sticky", obj["sticky"]),
    )


def _gates(raw: object) -> Gates:
    obj = f.fields("plan.gates", raw, _GATES_KEYS)
    return Gates(
        max_error_rate_increase=f.number(
            "plan.gates.max_error_rate_increase", obj["max_error_rate_increase"]
        ),
        max_p99_ratio=f.number("plan.gates.max_p99_ratio", obj["max_p99_ratio"]),
        reward_not_worse=f.flag("plan.gates.reward_not_worse", obj["reward_not_worse"]),
    )


def _shadow(raw: object) -> ShadowPhase | None:
    if raw is None:
        return None
    obj = f.fields("plan.shadow", raw, _SHADOW_KEYS)
    return ShadowPhase(
        percent=f.number("plan.shadow.percent", obj["percent"]),
        min_agreement=f.number("plan.shadow.min_agreement", obj["min_agreement"]),
        min_requests=f.integer("plan.shadow.min_requests", obj["min_requests"], 1),
    )


_STATE_KEYS = (
    "phase",
    "step",
    "step_started_at",
    "revision",
    "approval",
    "reference",
    "history",
    "dropped",
)


def _state(raw: object) -> RolloutState:
    obj = f.fields("state", raw, _STATE_KEYS)
    history = f.array("state.history", obj["history"], MAX_HISTORY)
    return RolloutState(
        phase=_choice("state.phase", obj["phase"], Phase),
        step=f.integer("state.step", obj["step"]),
        step_started_at=f.number("state.step_started_at", obj["step_started_at"]),
        revision=f.integer("state.revision", obj["revision"], 1),
        approval=_approval(obj["approval"]),
        reference=_reference(obj["reference"]),
        history=tuple(_decision(f"state.history[{i}]", d) for i, d in enumerate(history)),
        dropped=f.integer("state.dropped", obj["dropped"]),
    )


def _approval(raw: object) -> Approval | None:
    if raw is None:
        return None
    obj = f.fields("state.approval", raw, ("by", "at"))
    by, at = f.text("state.approval.by", obj["by"]), f.number("state.approval.at", obj["at"])
    return _in("state", lambda: Approval(by=by, at=at))


def _reference(raw: object) -> ControlFigures | None:
    if raw is None:
        return None
    obj = f.fields("state.reference", raw, ("requests", "error_rate", "p99", "rewards"))
    p99 = obj["p99"]
    sums = f.fields(
        "state.reference.rewards", obj["rewards"], ("count", "total", "total_sq", "non_binary")
    )
    return ControlFigures(
        requests=f.integer("state.reference.requests", obj["requests"]),
        error_rate=f.number("state.reference.error_rate", obj["error_rate"]),
        p99=None if p99 is None else f.number("state.reference.p99", p99),
        rewards=RewardSummary(
            count=f.integer("state.reference.rewards.count", sums["count"]),
            total=f.number("state.reference.rewards.total", sums["total"]),
            total_sq=f.number("state.reference.rewards.total_sq", sums["total_sq"]),
            non_binary=f.integer("state.reference.rewards.non_binary", sums["non_binary"]),
        ),
    )


_DECISION_KEYS = ("rev", "at", "move", "phase", "step", "by", "reason")


def _decision(path: str, raw: object) -> Decision:
    obj = f.fields(path, raw, _DECISION_KEYS, ("failed", "figures"))
    failed = f.array(f"{path}.failed", obj.get("failed", []), 10)
    figures = obj.get("figures", {})
    if not isinstance(figures, dict):
        raise RolloutError(f"{path}.figures: must be a JSON object, got {f.shown(figures)}")
    return Decision(
        revision=f.integer(f"{path}.rev", obj["rev"], 1),
        at=f.number(f"{path}.at", obj["at"]),
        move=_choice(f"{path}.move", obj["move"], MoveKind),
        phase=_choice(f"{path}.phase", obj["phase"], Phase),
        step=f.integer(f"{path}.step", obj["step"]),
        by=f.text(f"{path}.by", obj["by"]),
        reason=_string(f"{path}.reason", obj["reason"]),
        failed=tuple(f.text(f"{path}.failed[{i}]", g) for i, g in enumerate(failed)),
        figures={k: _figure(f"{path}.figures.{k}", v) for k, v in figures.items()},
    )


def _figure(path: str, value: object) -> Figure:
    if value is None or isinstance(value, str):
        return value
    number = f.number(path, value)
    return value if isinstance(value, int) else number


def _string(path: str, value: object) -> str:
    if not isinstance(value, str):
        raise RolloutError(f"{path}: must be a string, got {f.shown(value)}")
    return value


Word = TypeVar("Word", Phase, MoveKind)


def _choice(path: str, value: object, kind: type[Word]) -> Word:
    words = [member.value for member in kind]
    if not isinstance(value, str) or value not in words:
        raise RolloutError(f"{path}: must be one of {', '.join(words)}, got {f.shown(value)}")
    return kind(value)
