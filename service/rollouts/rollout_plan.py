"""A progressive rollout as data: the plan (what is rolled out, how, under which gates),
its state (where it stands, the revision every write increments, the approval, the
history of decisions) and the records they hold. The tag codec is rollout_tag.py.

Constructors check ranges and name the field in their error (``steps``,
``gates.max_p99_ratio``), so a plan built from the CLI's flags and one read from a
hand-edited tag are refused alike. Target texts are kept canonical
(``production`` -> ``Production``): they are compared with the experiment's rows.

How the candidate is promoted follows from the control, so it cannot contradict it:
a stage (Production) control -> the candidate version transitioned to that stage
(the old versions archived); an ``@alias`` control -> the alias moved to the
candidate version. A version number cannot be promoted to and is refused as control.
"""

from __future__ import annotations

import enum
import getpass
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from registry_watcher.targets import InvalidTarget, Target, TargetKind, parse_target
from service.rollouts.gates import ControlFigures, Figure, Gates
from service.rollouts.tag_fields import RolloutError, shown

DEFAULT_STEPS: tuple[float, ...] = (5.0, 25.0, 50.0, 100.0)
MAX_STEPS = 20
MAX_HISTORY = 30  # decisions kept in the state (and fewer when the tag would be too long)
PROMOTABLE_STAGES = ("Production", "Staging")
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_NAME_CHARS = 100  # who approved or decided: a name, not an essay
MAX_REASON_CHARS = 200


class Phase(enum.StrEnum):
    SHADOW = "shadow"
    STEP = "step"
    AWAITING_APPROVAL = "awaiting_approval"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"


TERMINAL_PHASES = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED})


class MoveKind(enum.StrEnum):
    """What a move does; every kind but HOLD writes a new state (and a history entry)."""

    START = "start"
    HOLD = "hold"
    FINISH_SHADOW = "finish_shadow"
    ADVANCE = "advance"
    AWAIT_APPROVAL = "await_approval"
    APPROVE = "approve"
    PROMOTE = "promote"
    ROLL_BACK = "roll_back"
    ABORT = "abort"


@dataclass(frozen=True)
class Promotion:
    """``kind`` "stage": transition the candidate version to stage ``name``, archiving
    the versions there; "alias": point alias ``name`` at the candidate version."""

    kind: str
    name: str

    @property
    def text(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True)
class ShadowPhase:
    """Before any step, mirror ``percent`` % of requests to the candidate until
    ``min_requests`` mirrored answers agree with the control's at ``min_agreement``."""

    percent: float
    min_agreement: float = 0.95
    min_requests: int = 100

    def __post_init__(self) -> None:
        _check(0 < self.percent <= 100, "shadow.percent", "must be > 0 and <= 100", self.percent)
        _check(
            0 <= self.min_agreement <= 1,
            "shadow.min_agreement",
            "must be between 0 and 1",
            self.min_agreement,
        )
        _check(self.min_requests >= 1, "shadow.min_requests", "must be >= 1", self.min_requests)


@dataclass(frozen=True)
class RolloutPlan:
    """What is rolled out and how. ``id`` keys every write of this rollout;
    ``candidate_version`` is the version the candidate target served at the start: only
    its figures count. ``steps``: the candidate's percent of traffic at each step."""

    id: str
    model: str
    control: str
    candidate: str
    candidate_version: int
    created_at: float
    steps: tuple[float, ...] = DEFAULT_STEPS
    min_step_seconds: float = 60.0
    min_step_requests: int = 100
    gates: Gates = field(default_factory=Gates)
    shadow: ShadowPhase | None = None
    require_approval: bool = False
    sticky: bool = False

    def __post_init__(self) -> None:
        _check(bool(_ID_RE.match(self.id)), "id", "letters, digits, '_' and '-' (1-64)", self.id)
        _check(bool(self.model), "model", "must not be empty", self.model)
        control, candidate = _target("control", self.control), _target("candidate", self.candidate)
        object.__setattr__(self, "control", control.text)
        object.__setattr__(self, "candidate", candidate.text)
        _check(candidate != control, "candidate", "must differ from the control", self.candidate)
        _check(
            self.candidate_version >= 1, "candidate_version", "must be >= 1", self.candidate_version
        )
        _check(math.isfinite(self.created_at), "created_at", "must be a time", self.created_at)
        object.__setattr__(self, "steps", tuple(float(p) for p in self.steps))
        _check_steps(self.steps)
        _check(
            math.isfinite(self.min_step_seconds) and self.min_step_seconds >= 0,
            "min_step_seconds",
            "must be >= 0",
            self.min_step_seconds,
        )
        _check(
            self.min_step_requests >= 1, "min_step_requests", "must be >= 1", self.min_step_requests
        )
        _check_gates(self.gates)
        _check(
            promotion_to(control) is not None,
            "control",
            f"cannot be promoted to: use a stage ({', '.join(PROMOTABLE_STAGES)}) or an @alias",
            self.control,
        )

    @property
    def promotion(self) -> Promotion:
        """How the candidate is promoted (see the module docstring)."""
        promotion = promotion_to(self.control_target())
        assert promotion is not None  # checked at construction
        return promotion

    def control_target(self) -> Target:
        return parse_target(self.control)

    def candidate_target(self) -> Target:
        return parse_target(self.candidate)


@dataclass(frozen=True)
class Approval:
    """Who approved the promotion (the name they gave, by default their OS user) and when."""

    by: str
    at: float

    def __post_init__(self) -> None:
        _check_name("approval.by", self.by)
        _check(math.isfinite(self.at), "approval.at", "must be a time", self.at)


@dataclass(frozen=True)
class Decision:
    """One entry of the rollout's history: the move made, by whom, at which revision, why,
    and the gate figures that decided it (rounded; the tags of the version get them too)."""

    revision: int
    at: float
    move: MoveKind
    phase: Phase
    step: int
    by: str
    reason: str
    failed: tuple[str, ...] = ()
    figures: Mapping[str, Figure] = field(default_factory=dict)


@dataclass(frozen=True)
class RolloutState:
    """Where a rollout stands. ``step``: the index into the plan's steps (0 in the
    shadow phase); ``revision``: +1 per write, the key of every move; ``reference``: the
    control's figures from the last step that measured them; ``history``: the newest
    decisions, oldest first (``dropped``: how many older ones no longer fit the tag)."""

    phase: Phase
    step: int
    step_started_at: float
    revision: int
    approval: Approval | None = None
    reference: ControlFigures | None = None
    history: tuple[Decision, ...] = ()
    dropped: int = 0

    @property
    def finished(self) -> bool:
        return self.phase in TERMINAL_PHASES


@dataclass(frozen=True)
class Rollout:
    """The plan and its state: what the ``stageserve.rollout`` tag holds."""

    plan: RolloutPlan
    state: RolloutState

    def __post_init__(self) -> None:
        state, plan = self.state, self.plan
        _check(
            0 <= state.step < len(plan.steps),
            "state.step",
            f"must be an index into the plan's {len(plan.steps)} steps",
            state.step,
        )
        if state.phase is Phase.SHADOW:
            _check(plan.shadow is not None, "state.phase", "the plan has no shadow phase", "shadow")
            _check(state.step == 0, "state.step", "must be 0 in the shadow phase", state.step)


def promotion_to(control: Target) -> Promotion | None:
    """How a candidate is promoted to ``control``; None when it cannot be."""
    if control.kind is TargetKind.ALIAS:
        return Promotion("alias", control.value)
    if control.kind is TargetKind.STAGE and control.value in PROMOTABLE_STAGES:
        return Promotion("stage", control.value)
    return None


def new_plan_id() -> str:
    """A fresh id for a plan: 12 hex digits, unique enough to key one model's rollouts."""
    return uuid.uuid4().hex[:12]


def default_approver() -> str:
    """The OS user's name: who approves when no name is given."""
    try:
        return getpass.getuser()[:MAX_NAME_CHARS] or "unknown"
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (a bare container)
        return "unknown"


# --- checks -------------------------------------------------------------------------


def _check(ok: bool, name: str, problem: str, value: object) -> None:
    if not ok:
        raise RolloutError(f"{name}: {problem}, got {shown(value)}")


def _check_name(name: str, value: str) -> None:
    _check(
        0 < len(value) <= MAX_NAME_CHARS and value.isprintable(),
        name,
        f"must be a printable name of 1 to {MAX_NAME_CHARS} characters",
        value,
    )


def _target(name: str, text: str) -> Target:
    try:
        return parse_target(text)
    except InvalidTarget as exc:
        raise RolloutError(f"{name}: {exc}") from None


def _check_steps(steps: tuple[float, ...]) -> None:
    _check(0 < len(steps) <= MAX_STEPS, "steps", f"must list 1 to {MAX_STEPS} percentages", steps)
    for i, percent in enumerate(steps):
        _check(0 < percent <= 100, f"steps[{i}]", "must be > 0 and <= 100", percent)
        if i:
            _check(percent > steps[i - 1], f"steps[{i}]", "must be above the step before", percent)
    _check(
        steps[0] < 100,
        "steps[0]",
        "must be below 100: the gates compare the candidate with the control's live traffic",
        steps[0],
    )


def _check_gates(gates: Gates) -> None:
    rise = gates.max_error_rate_increase
    _check(0 <= rise <= 1, "gates.max_error_rate_increase", "must be between 0 and 1", rise)
    ratio = gates.max_p99_ratio
    _check(math.isfinite(ratio) and ratio >= 1, "gates.max_p99_ratio", "must be >= 1", ratio)
