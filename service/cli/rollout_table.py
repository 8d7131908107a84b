"""``stageserve rollout status`` as text: a rollout as the admin API answers it
(service/rollouts/rollout_view.py writes its layout) turned into what an operator reads:
where it stands, for how long, the plan, the gate figures of the last decision that had
any, and the history, one line per decision. Pure: the document and the time in, lines
out; the HTTP call and the exit code are service/cli/rollout_command.py's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from service.cli.experiment_table import when
from service.cli.status_table import NONE, age, shorten

REASON_CHARS = 90  # a history line's reason is cut here: the whole text is in --json
GAP = "  "


def figure(value: object) -> str:
    """A gate figure as read: 6 significant digits, texts as they are."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.6g}"


def weights(policy: Mapping[str, Any]) -> str:
    """``Production 75 %, Staging 25 %`` (+ ``shadow Staging 10 %``)."""
    shares = ", ".join(f"{t} {figure(w)} %" for t, w in (policy.get("weights") or {}).items())
    shadow = policy.get("shadow")
    if isinstance(shadow, Mapping):
        shares += f", shadow {shadow.get('target')} {figure(shadow.get('percent'))} %"
    return shares or NONE


def plan_lines(plan: Mapping[str, Any]) -> list[tuple[str, str]]:
    gates = plan.get("gates") or {}
    reward = "reward not significantly worse" if gates.get("reward_not_worse") else "no reward gate"
    steps = " / ".join(figure(p) for p in plan.get("steps") or ())
    rows = [
        (
            "candidate",
            f"{plan.get('candidate')} v{plan.get('candidate_version')} against "
            f"{plan.get('control')}",
        ),
        (
            "steps",
            f"{steps} %, each at least {figure(plan.get('min_step_seconds'))} s and "
            f"{plan.get('min_step_requests')} requests per side",
        ),
        (
            "gates",
            f"error rate +{figure(gates.get('max_error_rate_increase'))} at most, "
            f"p99 {figure(gates.get('max_p99_ratio'))}x at most, {reward}",
        ),
    ]
    shadow = plan.get("shadow")
    if isinstance(shadow, Mapping):
        rows.append(
            (
                "shadow",
                f"{figure(shadow.get('percent'))} % mirrored first, agreement "
                f"{figure(shadow.get('min_agreement'))} over {shadow.get('min_requests')} "
                "requests",
            )
        )
    return rows


def approval_line(model: str, plan: Mapping[str, Any], state: Mapping[str, Any]) -> str | None:
    if not plan.get("require_approval"):
        return None
    approval = state.get("approval")
    if isinstance(approval, Mapping):
        return f"approved by {approval.get('by')} at {when(approval.get('at'))}"
    if state.get("phase") == "awaiting_approval":
        return f"awaited: stageserve rollout approve {model}"
    return "required before promotion"


def last_figures(history: Sequence[Mapping[str, Any]]) -> list[str]:
    """The gate figures of the newest decision that has any, a line each."""
    for decision in reversed(history):
        figures = decision.get("figures")
        if isinstance(figures, Mapping) and figures:
            move, at = decision.get("move"), when(decision.get("at"))
            head = f"gate figures of the last decision ({move}, {at}):"
            width = max(len(str(k)) for k in figures)
            return [head, *(f"  {str(k).ljust(width)}{GAP}{figure(v)}" for k, v in figures.items())]
    return []


def history_lines(state: Mapping[str, Any]) -> list[str]:
    history = state.get("history") or []
    rows = [
        (
            when(d.get("at")),
            str(d.get("move", NONE)),
            str(d.get("by", NONE)),
            shorten(str(d.get("reason", "")), REASON_CHARS),
        )
        for d in history
    ]
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(3)]
    lines = [
        GAP.join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + GAP + r[3] for r in rows
    ]
    dropped = state.get("dropped") or 0
    if dropped:
        lines.insert(0, f"({dropped} older decisions no longer fit the tag)")
    return lines


def render(view: Mapping[str, Any], source: str, now: float) -> str:
    """The rollout ``view`` (from ``source``: a gateway's URL or the registry) as text."""
    plan, state = view.get("plan") or {}, view.get("state") or {}
    model = str(view.get("model", plan.get("model", NONE)))
    live = "live" if view.get("live") else "over"
    head = f"{model}: rollout {plan.get('id')} ({live}), {view.get('describe')}  [{source}]"
    started = state.get("step_started_at")
    rows: list[tuple[str, str]] = []
    if view.get("live") and isinstance(started, int | float):
        rows.append(("in step", f"{age(now - started)} (since {when(started)})"))
    rows += plan_lines(plan)
    approval = approval_line(model, plan, state)
    if approval:
        rows.append(("approval", approval))
    rows.append(("policy", weights(view.get("policy") or {})))
    width = max(len(label) for label, _ in rows)
    lines = [head, *(f"  {label.ljust(width)}{GAP}{text}" for label, text in rows)]
    lines += last_figures(state.get("history") or [])
    lines += ["history:", *(f"  {line}" for line in history_lines(state))]
    return "\n".join(lines)
