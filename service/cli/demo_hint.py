"""What ``stageserve demo`` tells the user to try, from what the registry holds now.

Pure: the registry's state (``DemoState``, read by service/cli/demo.py) and how to reach
the gateway and the registry go in, lines come out. Every suggested command works
against that state: a target that is empty gets the command that fills it instead of a
request that would answer 503 (after a promotion, Staging is empty).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from registry_watcher.targets import Target, TargetKind, parse_target

# One row of the diabetes data set's ten features; docs/examples/diabetes-request.json
# holds the same request.
REQUEST_BODY = (
    '{"dataframe_split": {"columns": ["age","sex","bmi","bp","s1","s2","s3","s4","s5","s6"],'
    ' "data": [[0.04,0.05,0.06,0.02,-0.04,-0.03,-0.04,0.0,0.02,-0.02]]}}'
)


@dataclass(frozen=True)
class DemoState:
    """The demo model in the registry: each version's stage, the aliases, the traffic
    policy tag (its stored text, None when unset)."""

    model: str
    exists: bool = True
    stages: Mapping[int, str] = field(default_factory=dict)
    aliases: Mapping[str, int] = field(default_factory=dict)
    policy: str | None = None

    def version_of(self, target: Target) -> int | None:
        """The version the gateway serves for ``target``: the highest version in a
        stage (as ``models:/name/Stage``), an alias's version, a version that exists."""
        if target.kind is TargetKind.STAGE:
            wanted = target.value.lower()
            return max((v for v, s in self.stages.items() if s.lower() == wanted), default=None)
        if target.kind is TargetKind.ALIAS:
            return self.aliases.get(target.value)
        version = int(target.value)
        return version if version in self.stages else None


@dataclass(frozen=True)
class Reach:
    """How the user reaches the gateway and the registry, as commands they can paste."""

    base_url: str  # http://127.0.0.1:3000
    tracking_uri: str  # sqlite:////abs/demo-registry/mlflow.db
    python: str  # the interpreter running the demo (has mlflow)
    stageserve: str  # the stageserve command


def hint_lines(state: DemoState, targets: Sequence[str], reach: Reach) -> list[str]:
    """The demo's hint: what it serves, then commands that work right now."""
    parsed = [parse_target(t) for t in targets]
    lines = [f"stageserve demo: {state.model} in {reach.tracking_uri}: {_summary(state, parsed)}"]
    if not state.exists:
        lines.append(
            f"  the registry has no model {state.model!r}: start again from a fresh demo "
            "registry with `stageserve demo --reset`"
        )
        return lines
    first, optional = parsed[0], parsed[1:]
    lines.append("stageserve demo: once it is ready, try:")
    if state.version_of(first) is None:
        lines.append(f"  {first.text} is empty, so the gateway stays unready; fill it:")
        lines.extend(_fill(state, first, None, reach))
    else:
        lines.append(
            f"  curl -si {reach.base_url}/invocations -H 'Content-Type: application/json' "
            f"-d '{REQUEST_BODY}'"
        )
    served = [(t, state.version_of(t)) for t in optional]
    pinned = [f"-H 'X-Model-Target: {t.text}' for version {v}" for t, v in served if v]
    if pinned:
        lines.append("  the same request with " + ", ".join(pinned))
    for target, version in served:
        if version is None:
            lines.append(f"  {target.text} is empty; to serve a candidate there:")
            lines.extend(_fill(state, target, state.version_of(first), reach))
    lines.append(f"  curl -s {reach.base_url}/admin/models")
    lines.extend(_traffic(state, first, served, reach))
    return lines


def _summary(state: DemoState, targets: Sequence[Target]) -> str:
    if not state.exists:
        return "not registered"
    parts = []
    for target in targets:
        version = state.version_of(target)
        empty = "not set" if target.kind is TargetKind.ALIAS else "empty"
        parts.append(f"{target.text} v{version}" if version else f"{target.text} {empty}")
    return ", ".join(parts)


def _candidate(state: DemoState, exclude: int | None) -> int | None:
    return max((v for v in state.stages if v != exclude), default=None)


def _fill(state: DemoState, target: Target, exclude: int | None, reach: Reach) -> list[str]:
    """The command that puts a version (the newest one but ``exclude``, the version the
    first target serves) in an empty stage or alias."""
    if target.kind is TargetKind.VERSION:
        return [f"    version {target.value} does not exist in the registry"]
    version = _candidate(state, exclude)
    if version is None:
        return ["    the model has no version to put there: `stageserve demo --reset` starts over"]
    client = f"mlflow.MlflowClient('{reach.tracking_uri}')"
    if target.kind is TargetKind.STAGE:
        call = f"transition_model_version_stage('{state.model}', '{version}', '{target.value}')"
    else:
        call = f"set_registered_model_alias('{state.model}', '{target.value}', '{version}')"
    return [f'    {shlex.quote(reach.python)} -c "import mlflow; {client}.{call}"']


def _traffic(
    state: DemoState,
    first: Target,
    served: Sequence[tuple[Target, int | None]],
    reach: Reach,
) -> list[str]:
    """The traffic policy in force and how to clear it, or a canary to try."""
    prefix = f"    MLFLOW_TRACKING_URI={reach.tracking_uri} {reach.stageserve} traffic"
    if state.policy is not None:
        return [
            f"  traffic policy (registry tag): {state.policy}; to send everything to "
            f"{first.text} again:",
            f"{prefix} clear {state.model}",
        ]
    canary = next((t for t, v in served if v), None)
    if canary is None:
        return []
    return [
        f"  a 10% canary on {canary.text}:",
        f"{prefix} set {state.model} {first.text}=90 {canary.text}=10",
    ]
