"""What an operator asks of a rollout, read from the admin API's JSON bodies: start (the
plan's settings), approve (who) and abort (who, why). Pure: every refusal is a
RolloutError whose message names the field as the body spells it (``steps[0]``,
``gates.max_p99_ratio``, ``shadow.percent``), so the API answers a 400 that says what
to fix.

A start body is checked whole before the registry is asked anything: the plan is built
once with a stand-in version (the constructor's range checks are the one set of rules,
shared with a plan read back from the tag); the real plan pins the version the
candidate target names when the start is accepted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from service.rollouts import tag_fields as f
from service.rollouts.gates import Gates
from service.rollouts.rollout_plan import (
    DEFAULT_STEPS,
    MAX_NAME_CHARS,
    MAX_REASON_CHARS,
    MAX_STEPS,
    RolloutPlan,
    ShadowPhase,
)
from service.rollouts.tag_fields import RolloutError

DEFAULT_CONTROL = "Production"
_GATES_KEYS = tuple(field.name for field in dataclasses.fields(Gates))
_SHADOW_KEYS = ("min_agreement", "min_requests")  # and "percent", required


@dataclass(frozen=True)
class StartRequest:
    """A checked start body: everything of the plan but its id, time and pinned version."""

    candidate: str
    control: str = DEFAULT_CONTROL
    steps: tuple[float, ...] = DEFAULT_STEPS
    min_step_seconds: float = 60.0
    min_step_requests: int = 100
    gates: Gates = dataclasses.field(default_factory=Gates)
    shadow: ShadowPhase | None = None
    require_approval: bool = False
    sticky: bool = False
    by: str | None = None

    def plan(
        self, model: str, candidate_version: int, plan_id: str, created_at: float
    ) -> RolloutPlan:
        """The plan, with the candidate's version pinned (RolloutError: a wrong field)."""
        return RolloutPlan(
            id=plan_id,
            model=model,
            control=self.control,
            candidate=self.candidate,
            candidate_version=candidate_version,
            created_at=created_at,
            steps=self.steps,
            min_step_seconds=self.min_step_seconds,
            min_step_requests=self.min_step_requests,
            gates=self.gates,
            shadow=self.shadow,
            require_approval=self.require_approval,
            sticky=self.sticky,
        )

    def probe(self, model: str) -> RolloutPlan:
        """The plan with a stand-in id, time and version: for its checks and its
        traffic policies, before the registry is asked which version to pin."""
        return self.plan(model, candidate_version=1, plan_id="probe", created_at=0.0)


# A start body's keys: the request's fields ("candidate" is required).
_START_KEYS = tuple(field.name for field in dataclasses.fields(StartRequest))[1:]


def parse_start(model: str, body: object) -> StartRequest:
    """A start body (a JSON object, ``candidate`` required) checked whole."""
    obj = f.fields("body", body, ("candidate",), _START_KEYS)
    given: dict[str, Any] = {"candidate": f.text("candidate", obj["candidate"])}
    if "control" in obj:
        given["control"] = f.text("control", obj["control"])
    if "steps" in obj:
        steps = f.array("steps", obj["steps"], MAX_STEPS)
        given["steps"] = tuple(f.number(f"steps[{i}]", p) for i, p in enumerate(steps))
    if "min_step_seconds" in obj:
        given["min_step_seconds"] = f.number("min_step_seconds", obj["min_step_seconds"])
    if "min_step_requests" in obj:
        given["min_step_requests"] = f.integer("min_step_requests", obj["min_step_requests"], 1)
    if "gates" in obj:
        given["gates"] = _gates(obj["gates"])
    if obj.get("shadow") is not None:
        given["shadow"] = _shadow(obj["shadow"])
    for key in ("require_approval", "sticky"):
        if key in obj:
            given[key] = f.flag(key, obj[key])
    if "by" in obj:
        given["by"] = name("by", obj["by"])
    request = StartRequest(**given)
    request.probe(model)
    return request


def parse_approve(body: object) -> str | None:
    """An approve body: ``{"by": NAME}`` or nothing (``None``: no body)."""
    if body is None:
        return None
    obj = f.fields("body", body, (), ("by",))
    return name("by", obj["by"]) if "by" in obj else None


def parse_abort(body: object) -> tuple[str | None, str]:
    """An abort body: ``{"why": TEXT, "by": NAME}``, both optional."""
    if body is None:
        return None, ""
    obj = f.fields("body", body, (), ("by", "why"))
    by = name("by", obj["by"]) if "by" in obj else None
    why = obj.get("why", "")
    if not isinstance(why, str) or len(why) > MAX_REASON_CHARS or not why.isprintable():
        raise RolloutError(
            f"why: must be a printable text of at most {MAX_REASON_CHARS} characters, "
            f"got {f.shown(why)}"
        )
    return by, why.strip()


def name(path: str, value: object) -> str:
    """Who acts: a printable name of 1 to MAX_NAME_CHARS characters."""
    text = value.strip() if isinstance(value, str) else value
    if not isinstance(text, str) or not 0 < len(text) <= MAX_NAME_CHARS or not text.isprintable():
        raise RolloutError(
            f"{path}: must be a printable name of 1 to {MAX_NAME_CHARS} characters, "
            f"got {f.shown(value)}"
        )
    return text


def _gates(raw: object) -> Gates:
    obj = f.fields("gates", raw, (), _GATES_KEYS)
    given: dict[str, Any] = {}
    for key in ("max_error_rate_increase", "max_p99_ratio"):
        if key in obj:
            given[key] = f.number(f"gates.{key}", obj[key])
    if "reward_not_worse" in obj:
        given["reward_not_worse"] = f.flag("gates.reward_not_worse", obj["reward_not_worse"])
    return Gates(**given)


def _shadow(raw: object) -> ShadowPhase:
    obj = f.fields("shadow", raw, ("percent",), _SHADOW_KEYS)
    given: dict[str, Any] = {"percent": f.number("shadow.percent", obj["percent"])}
    if "min_agreement" in obj:
        given["min_agreement"] = f.number("shadow.min_agreement", obj["min_agreement"])
    if "min_requests" in obj:
        given["min_requests"] = f.integer("shadow.min_requests", obj["min_requests"], 1)
    return ShadowPhase(**given)
