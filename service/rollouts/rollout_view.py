"""A rollout as the admin API answers it and ``stageserve rollout status`` shows it: the
plan and the state exactly as the ``stageserve.rollout`` tag stores them (history
included), plus what is derived from them, so no reader has to re-derive it: where it
stands in words (``describe``), whether it is still live, and the traffic policy the
gateways are to follow in this state. Pure."""

from __future__ import annotations

import json
from typing import Any

from service.rollouts.progression import describe, policy_for
from service.rollouts.rollout_plan import Rollout
from service.rollouts.rollout_tag import ROLLOUT_TAG, encode_rollout


def rollout_json(rollout: Rollout) -> dict[str, Any]:
    plan, state = rollout.plan, rollout.state
    stored = json.loads(encode_rollout(rollout))
    return {
        "model": plan.model,
        "tag": ROLLOUT_TAG,
        "describe": describe(plan, state),
        "live": not state.finished,
        "policy": policy_for(plan, state).to_dict(),
        "plan": stored["plan"],
        "state": stored["state"],
    }
