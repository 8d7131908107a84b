"""The ``stageserve.rollout.*`` tags a rollout's decisions leave on the candidate model
version, pure: from the stored plan and state, the same keys every time.

Readable with any MLflow client (``client.get_model_version(name, v).tags``): the
result (promoted | rolled_back | aborted | in_progress), the step reached, the figures
and the failed gates of the newest decision, when, by whom, and the plan's id. Every
key is written each time, so a decision without a figure or a failed gate never
leaves a stale one behind; derived from the stored state, so any controller (or the
same one after a restart) writes the same text.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from service.rollouts.rollout_plan import Phase, RolloutPlan, RolloutState
from service.rollouts.tag_fields import number_out

PREFIX = "stageserve.rollout."
RESULT, STEP, GATES, FAILED, AT, PLAN, BY = (
    PREFIX + key for key in ("result", "step", "gates", "failed", "at", "plan", "by")
)
IN_PROGRESS = "in_progress"
_RESULTS = {
    Phase.PROMOTED: "promoted",
    Phase.ROLLED_BACK: "rolled_back",
    Phase.ABORTED: "aborted",
}


def result_word(phase: Phase) -> str:
    """The ``stageserve.rollout.result`` value of a phase."""
    return _RESULTS.get(phase, IN_PROGRESS)


def step_text(plan: RolloutPlan, state: RolloutState) -> str:
    """'2/4 (25 %)'; '0/4 (shadow 10 %)' in the shadow phase."""
    total = len(plan.steps)
    if state.phase is Phase.SHADOW and plan.shadow is not None:
        return f"0/{total} (shadow {number_out(plan.shadow.percent)} %)"
    return f"{state.step + 1}/{total} ({number_out(plan.steps[state.step])} %)"


def iso_utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def decision_tags(plan: RolloutPlan, state: RolloutState) -> dict[str, str]:
    """The version tags for the newest decision of ``state`` (empty without one)."""
    if not state.history:
        return {}
    last = state.history[-1]
    return {
        RESULT: result_word(state.phase),
        STEP: step_text(plan, state),
        GATES: json.dumps(dict(last.figures), separators=(",", ":"), sort_keys=True),
        FAILED: ",".join(last.failed),
        AT: iso_utc(last.at),
        PLAN: plan.id,
        BY: last.by,
    }
