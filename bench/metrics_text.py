"""Counters read from a gateway's ``/metrics`` text: one metric's samples by label
values (pure, so the bench's checks of drops and rows can be tested on a sample)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def counter_values(text: str, name: str) -> dict[str, float]:
    """The samples of the counter ``name`` (with its ``_total``), keyed by their label
    values joined with "/" in label-name order ("" when unlabelled)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                key = "/".join(sample.labels[k] for k in sorted(sample.labels))
                out[key] = out.get(key, 0.0) + sample.value
    return out
