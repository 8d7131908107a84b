"""Reading the rollout tag's decoded JSON field by field: each reader checks one value's
type and range, and its error names the field by its path (``plan.gates.max_p99_ratio``)
so a hand-edited or truncated tag is reported as exactly what is wrong with it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any


class RolloutError(ValueError):
    """A rollout plan, state or tag that cannot be used; the message names the field."""


def shown(value: object) -> str:
    """A value as written in JSON (true, null, "5"), cut to 60 characters."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def fields(
    path: str, value: object, required: Sequence[str], optional: Sequence[str] = ()
) -> dict[str, Any]:
    """An object with every required key and no key outside required + optional."""
    if not isinstance(value, dict):
        raise RolloutError(f"{path}: must be a JSON object, got {shown(value)}")
    unknown = sorted(str(k) for k in value if k not in required and k not in optional)
    if unknown:
        raise RolloutError(f"{path}: unknown key(s) {', '.join(map(repr, unknown))}")
    missing = [k for k in required if k not in value]
    if missing:
        raise RolloutError(f"{path}.{missing[0]}: required")
    return value


def number(path: str, value: object) -> float:
    """A finite JSON number (not a boolean) as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RolloutError(f"{path}: must be a number, got {shown(value)}")
    try:
        out = float(value)
    except OverflowError:
        out = math.inf
    if not math.isfinite(out):
        raise RolloutError(f"{path}: must be a finite number, got {shown(value)}")
    return out


def integer(path: str, value: object, low: int = 0) -> int:
    """A whole JSON number >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise RolloutError(f"{path}: must be a whole number >= {low}, got {shown(value)}")
    return value


def text(path: str, value: object) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise RolloutError(f"{path}: must be a non-empty string, got {shown(value)}")
    return value


def flag(path: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise RolloutError(f"{path}: must be true or false, got {shown(value)}")
    return value


def array(path: str, value: object, most: int) -> list[Any]:
    """A JSON array of at most ``most`` items."""
    if not isinstance(value, list):
        raise RolloutError(f"{path}: must be an array, got {shown(value)}")
    if len(value) > most:
        raise RolloutError(f"{path}: at most {most} items, got {len(value)}")
    return value


def number_out(value: float) -> int | float:
    """A float as JSON writes it best: integral values as ints (5, not 5.0)."""
    return int(value) if float(value).is_integer() else value
