"""``stageserve experiment show`` as text: an experiment's results (the JSON of
``GET /admin/models/{name}/experiment`` or of the fleet's Prometheus reading, whose keys
service/experiments/results.py lists) turned into one row per target and version.
Pure: the answer in, lines out; the reading and the exit code are
service/cli/experiment_command.py's.

A header line (model, control, window, confidence), then per row: requests, error rate,
p50/p99 in ms, feedback, mean reward and its interval, the difference with the control
and its interval, the p-value and its test, the shadow agreement; then a note for each
figure the data could not give, saying why.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from service.cli.status_table import age, table
from service.experiments.window_starts import GATEWAY_START, GIVEN, POLICY_CHANGE

COLUMNS = (
    "TARGET",
    "VERSION",
    "REQUESTS",
    "ERRORS",
    "P50 MS",
    "P99 MS",
    "FEEDBACK",
    "MEAN REWARD [CI]",
    "VS CONTROL [CI]",
    "P-VALUE (TEST)",
    "SHADOW AGREE",
)
NONE = "-"
SINCE = {
    POLICY_CHANGE: "since the traffic policy changed",
    GATEWAY_START: "since the gateway started",
    GIVEN: "since --since",
}


def number(value: object, digits: int = 3, signed: bool = False) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return NONE
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def milliseconds(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return NONE
    return f"{seconds * 1000:.3g}" if seconds * 1000 < 100 else f"{seconds * 1000:.0f}"


def rate(value: object) -> str:
    return f"{value * 100:.1f}%" if isinstance(value, int | float) else NONE


def p_value(value: object) -> str:
    if not isinstance(value, int | float):
        return NONE
    return "<1e-4" if value < 1e-4 else f"{value:.4f}"


def with_interval(value: str, low: object, high: object, signed: bool = False) -> str:
    if value == NONE:
        return NONE
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        return value
    return f"{value} [{number(low, signed=signed)}, {number(high, signed=signed)}]"


def when(epoch: object) -> str:
    if not isinstance(epoch, int | float):
        return NONE
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(epoch))


def row(target: Mapping[str, Any]) -> tuple[str, ...]:
    reward = target.get("reward") or {}
    versus = target.get("vs_control")
    shadow = target.get("shadow") or {}
    compared = int(shadow.get("agree") or 0) + int(shadow.get("disagree") or 0)
    if target.get("control"):
        difference, significance = "control", NONE
    elif versus is None:
        difference, significance = NONE, NONE
    else:
        difference = with_interval(
            number(versus.get("difference"), signed=True),
            versus.get("low"),
            versus.get("high"),
            signed=True,
        )
        test = versus.get("test")
        significance = p_value(versus.get("p_value"))
        significance = f"{significance} ({test})" if test and significance != NONE else NONE
    agreement = rate(shadow.get("agreement"))
    return (
        str(target.get("target", NONE)),
        str(target.get("version", NONE)),
        str(target.get("requests", 0)),
        rate(target.get("error_rate")),
        milliseconds((target.get("latency_seconds") or {}).get("p50")),
        milliseconds((target.get("latency_seconds") or {}).get("p99")),
        str(target.get("feedback", 0)),
        with_interval(number(reward.get("mean")), reward.get("low"), reward.get("high")),
        difference,
        significance,
        f"{agreement} of {compared}" if agreement != NONE else NONE,
    )


def notes(targets: Sequence[Mapping[str, Any]]) -> list[str]:
    """Why a figure is missing, once per row and figure."""
    lines = []
    for target in targets:
        name = f"{target.get('target')} v{target.get('version')}"
        reward = (target.get("reward") or {}).get("undefined")
        versus = (target.get("vs_control") or {}).get("undefined")
        if reward:
            lines.append(f"  {name}: no reward interval: {reward}")
        if versus:
            lines.append(f"  {name}: no comparison with the control: {versus}")
    return lines


def render(answer: Mapping[str, Any], source: str) -> str:
    """The whole text: header, table, notes."""
    window = answer.get("window") or {}
    control = answer.get("control") or {}
    start, end = window.get("start"), window.get("end")
    length = (
        f", {age(end - start)}"
        if isinstance(start, int | float) and isinstance(end, int | float)
        else ""
    )
    confidence = answer.get("confidence")
    level = f"{confidence * 100:g}%" if isinstance(confidence, int | float) else NONE
    header = [
        f"model {answer.get('model')} ({source}); control {control.get('target')} "
        f"v{control.get('version') if control.get('version') is not None else NONE}",
        f"window {when(start)} .. {when(end)}{length}, "
        f"{SINCE.get(str(window.get('since')), 'since its start')}; intervals {level}",
    ]
    targets = answer.get("targets") or []
    if not targets:
        return "\n".join([*header, "no requests in the window"])
    lines = [*header, "", *table([row(t) for t in targets], COLUMNS)]
    why = notes(targets)
    return "\n".join([*lines, *(["", *why] if why else [])])
