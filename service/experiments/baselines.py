"""A model's experiment baseline: its counters when a worker first applied the traffic
policy in force, the start of ``GET /admin/models/{name}/experiment``'s window.

Pure: what a baseline is, its file form, and the rule deciding whether one stored is
kept (service/experiments/baseline_store.py does the files). A policy is identified by
its canonical JSON (``TrafficPolicy.to_json``), so the same policy read from the
registry or written through the admin API is the same experiment. The first baseline
taken for a policy wins: workers applying it later, and a restart, keep it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.experiments.window import Sample

FORMAT = 1


@dataclass(frozen=True)
class Baseline:
    """The ``samples`` of one model's experiment series when ``policy`` was applied."""

    model: str
    policy: str
    taken_at: float
    samples: tuple[Sample, ...]

    def to_text(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "model": self.model,
                "policy": self.policy,
                "taken_at": self.taken_at,
                "samples": [[s.name, dict(s.labels), s.value] for s in self.samples],
            },
            separators=(",", ":"),
        )


def baseline_from_text(text: str) -> Baseline | None:
    """A stored baseline, or None for anything that is not one (a torn or foreign file)."""
    try:
        data: Any = json.loads(text)
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            return None
        samples = tuple(
            Sample(str(name), {str(k): str(v) for k, v in labels.items()}, float(value))
            for name, labels, value in data["samples"]
        )
        return Baseline(str(data["model"]), str(data["policy"]), float(data["taken_at"]), samples)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def current_baseline(stored: Baseline | None, model: str, policy: str) -> Baseline | None:
    """The stored baseline when it is the one of this model's policy in force, else None."""
    if stored is not None and stored.model == model and stored.policy == policy:
        return stored
    return None
