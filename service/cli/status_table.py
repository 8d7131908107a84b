"""``stageserve status`` as text: a running gateway's ``GET /admin/models`` document
(service/ops/state_view.py writes its layout) turned into what an on-call engineer reads
first. Pure: the document and the time in, lines out; the HTTP call and the exit code
are service/cli/status_command.py's.

Two header lines (is the gateway ready and why not; is the registry reachable), then one
row per model and target: the version served, since when, its status, the last error
(shortened) and the share of the traffic it takes now.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

COLUMNS = ("MODEL", "TARGET", "VERSION", "SINCE", "STATUS", "SHARE", "LAST ERROR / NOTE")
NONE = "-"
# A row's error or note is cut to this many characters: the whole text is in --json.
ERROR_CHARS = 70
GAP = "  "


class NotAState(ValueError):
    """The document is not a stageserve gateway's /admin/models answer."""


def check_state(document: object) -> dict[str, Any]:
    """The document, if it has the shape of /admin/models (else NotAState saying why)."""
    if not isinstance(document, dict):
        raise NotAState(f"a JSON {type(document).__name__}, not an object")
    for key, kind in (("ready", bool), ("models", list), ("watcher", dict)):
        if not isinstance(document.get(key), kind):
            raise NotAState(f'no "{key}" {kind.__name__} in it')
    for model in document["models"]:
        if not isinstance(model, dict) or not isinstance(model.get("targets"), list):
            raise NotAState('a model without its "targets" list')
    return document


def parse_iso(text: object) -> float | None:
    """The gateway's timestamps (``2026-01-31T12:00:00Z``, UTC) as epoch seconds."""
    if not isinstance(text, str):
        return None
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


def age(seconds: float) -> str:
    """A duration the way people say it: 45s, 3m, 2h05m, 3d04h."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def since(text: object, now: float) -> str:
    """``2026-01-31 12:00:00Z (3m ago)``, or NONE."""
    at = parse_iso(text)
    if at is None:
        return NONE
    return f"{str(text).replace('T', ' ')} ({age(now - at)} ago)"


def shorten(text: str, limit: int = ERROR_CHARS) -> str:
    """One line of at most ``limit`` characters (whitespace runs collapsed)."""
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "..."


def percent(share: float) -> str:
    """0.9 -> ``90%``, 1/3 -> ``33.3%``."""
    value = round(share * 100, 1)
    return f"{value:g}%"


def version_cell(target: Mapping[str, Any]) -> str:
    """The version served, and the one the registry names when they differ."""
    served, wanted = target.get("version"), target.get("registry_version")
    shown = NONE if served is None else str(served)
    if wanted is not None and wanted != served:
        shown += f" (registry: {wanted})"
    return shown


def share_cell(target: str, traffic: Mapping[str, Any]) -> str:
    """The share of the model's traffic the target answers now, and its shadow copy."""
    shares = traffic.get("effective_shares") or {}
    shown = percent(float(shares.get(target, 0.0)))
    shadow = (traffic.get("policy") or {}).get("shadow")
    if isinstance(shadow, dict) and shadow.get("target") == target:
        shown += f" +shadow {shadow.get('percent')}%"
    return shown


def note_cell(target: Mapping[str, Any]) -> str:
    """The last load error (stage, attempts), else why the target is stale or empty."""
    error = target.get("last_error")
    if error:
        stage = target.get("last_error_stage") or "load"
        attempts = target.get("failed_attempts") or 1
        tries = f", {attempts} attempts" if attempts > 1 else ""
        return shorten(f"[{stage}{tries}] {error}")
    note = target.get("stale_reason") or target.get("registry_note")
    return shorten(str(note)) if note else NONE


def rows(state: Mapping[str, Any], now: float) -> list[tuple[str, ...]]:
    """One row per model and target, in the gateway's order."""
    out: list[tuple[str, ...]] = []
    for model in state["models"]:
        traffic = model.get("traffic") or {}
        for target in model["targets"]:
            name = str(target.get("target"))
            out.append(
                (
                    str(model.get("name")),
                    name + ("" if target.get("required") else " (optional)"),
                    version_cell(target),
                    since(target.get("loaded_at"), now),
                    str(target.get("status")),
                    share_cell(name, traffic),
                    note_cell(target),
                )
            )
    return out


def table(rows: Sequence[Sequence[str]], header: Sequence[str] = COLUMNS) -> list[str]:
    """Left-aligned columns as wide as their widest cell; the last one not padded."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append(GAP.join([*cells, row[-1]]).rstrip())
    return lines


def gateway_lines(state: Mapping[str, Any], url: str, now: float) -> list[str]:
    worker = state.get("worker") or {}
    started = parse_iso(worker.get("started_at"))
    up = f", up {age(now - started)}" if started is not None else ""
    where = f"worker pid {worker.get('pid')}{up}"
    if state["ready"]:
        return [f"gateway   {url}  ready ({where})"]
    lines = [f"gateway   {url}  NOT READY ({where})"]
    lines += [f"          - {reason}" for reason in state.get("unready_reasons") or ()]
    return lines


def registry_line(watcher: Mapping[str, Any], now: float) -> str:
    uri = watcher.get("registry_uri") or "(no registry)"
    every = watcher.get("poll_interval_s")
    polled = f", polled every {every:g}s" if isinstance(every, int | float) else ""
    last_read = parse_iso(watcher.get("last_success_at"))
    read = f"last read {age(now - last_read)} ago" if last_read is not None else "never read"
    reachable = watcher.get("reachable")
    if reachable is None:
        return f"registry  {uri}  not read yet{polled}"
    if reachable:
        return f"registry  {uri}  reachable ({read}{polled})"
    failures = watcher.get("consecutive_failures") or 0
    error = shorten(str(watcher.get("last_error") or "no error said"))
    return f"registry  {uri}  UNREACHABLE ({failures} failed polls, {read}{polled}): {error}"


def policy_lines(state: Mapping[str, Any]) -> list[str]:
    """A model whose traffic policy tag is refused says so (the default policy serves)."""
    lines = []
    for model in state["models"]:
        error = (model.get("traffic") or {}).get("error")
        if error:
            lines.append(f"{model.get('name')}: traffic policy tag refused: {shorten(error)}")
    return lines


def render(state: Mapping[str, Any], url: str, now: float) -> str:
    """The whole status text for a checked /admin/models document."""
    lines = [*gateway_lines(state, url, now), registry_line(state["watcher"], now), ""]
    found = rows(state, now)
    lines += table(found) if found else ["no model is configured"]
    policies = policy_lines(state)
    return "\n".join([*lines, *(["", *policies] if policies else [])])
