"""The README's shell snippets, as the snippet test (tests/integration/test_demo.py) runs
them: every ```bash block in order, what it is expected to print, and which blocks are
not run and why.

Conventions in README.md's source:

- ``<!-- snippet: not run (REASON) -->`` on the line before a block: the block cannot
  run against a local demo (it starts the demo itself, needs a remote registry, Docker,
  an MLflow server...). The reason is required.
- Comment lines right after a command (no blank line between) are that command's
  output as the README shows it; ``...`` stands for any text. Each one must match a
  line of the block's output, or its start (not followed by a digit), whitespace around
  it aside, in order. A comment after a
  blank line, or opening a block, is prose.

Pure: no process is run here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from registry_watcher.targets import parse_target
from registry_watcher.traffic_policy import parse_policy
from service.cli.demo_hint import DemoState

FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>\S*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*snippet:(?P<body>.*?)-->\s*$")
NOT_RUN = re.compile(r"^not run \((?P<reason>.*\S.*)\)$")


class SnippetError(ValueError):
    """README.md breaks a convention above (a marker without a reason, ...)."""


@dataclass(frozen=True)
class Snippet:
    line: int  # README line of the opening fence, 1-based
    code: str
    not_run: str | None  # the reason it is not run; None: it runs
    expected: tuple[str, ...]  # output lines the README shows, in order


def readme_snippets(text: str) -> list[Snippet]:
    """Every ```bash block of ``text`` in order."""
    lines = text.splitlines()
    found: list[Snippet] = []
    marker: tuple[int, str] | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        mark = MARKER.match(line)
        if mark:
            marker = (index + 1, mark.group("body").strip())
            index += 1
            continue
        fence = FENCE.match(line)
        if not fence:
            if line.strip() and marker:
                raise SnippetError(f"README.md:{marker[0]}: a snippet marker not before a block")
            index += 1
            continue
        end = _closing_fence(lines, index, fence.group("indent"))
        if fence.group("lang") == "bash":
            indent = len(fence.group("indent"))
            body = [
                raw[indent:] if raw[:indent].strip() == "" else raw
                for raw in lines[index + 1 : end]
            ]
            reason = _reason(marker) if marker else None
            found.append(Snippet(index + 1, "\n".join(body) + "\n", reason, expected_output(body)))
        elif marker:
            raise SnippetError(f"README.md:{marker[0]}: a snippet marker before a non-bash block")
        marker = None
        index = end + 1
    return found


def _closing_fence(lines: Sequence[str], start: int, indent: str) -> int:
    for end in range(start + 1, len(lines)):
        if lines[end].rstrip() == f"{indent}```":
            return end
    raise SnippetError(f"README.md:{start + 1}: a code block that never closes")


def _reason(marker: tuple[int, str]) -> str:
    line, body = marker
    match = NOT_RUN.match(body)
    if not match:
        raise SnippetError(
            f"README.md:{line}: write the marker as <!-- snippet: not run (REASON) -->, "
            f"with a reason; got {body!r}"
        )
    return match.group("reason").strip()


def expected_output(code: Sequence[str]) -> tuple[str, ...]:
    """The comment lines that follow a command directly: what it prints."""
    expected: list[str] = []
    after_command = False
    for raw in code:
        line = raw.strip()
        if not line:
            after_command = False
        elif line.startswith("#"):
            if after_command:
                expected.append(line[1:].strip())
        else:
            after_command = True
    return tuple(expected)


def missing_output(expected: Sequence[str], output: str) -> str | None:
    """The first expected line not found, in order, in ``output``; None when all are."""
    lines = [line.strip() for line in output.replace("\r", "").splitlines()]
    position = 0
    for wanted in expected:
        # The line, or its start: curl prints no newline after a body, so the next
        # command's output follows on the same line (as in the user's terminal).
        pattern = re.compile(".*".join(re.escape(part) for part in wanted.split("...")) + r"(?!\d)")
        for offset, line in enumerate(lines[position:]):
            if pattern.match(line):
                position += offset + 1
                break
        else:
            return wanted
    return None


def caught_up(state: DemoState, admin: Mapping[str, Any]) -> bool:
    """Whether the gateway (its ``/admin/models``) serves what the registry holds now:
    every target's version, and the traffic policy. What a user waits for, a poll
    interval, between two steps of the README."""
    for model in admin["models"]:
        if model["name"] != state.model:
            continue
        for target in model["targets"]:
            want = state.version_of(parse_target(target["target"]))
            if target["version"] != want or target["status"] not in ("ready", "empty"):
                return False
        traffic = model["traffic"]
        if state.policy is None:
            return bool(traffic["source"] == "default")
        return bool(parse_policy(state.policy).to_dict() == traffic["policy"])
    return False
