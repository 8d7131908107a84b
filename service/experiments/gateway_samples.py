"""This gateway's experiment series, read from its metrics as every worker wrote them.

With several workers (Prometheus multiprocess mode) each writes its own files and
``MultiProcessCollector`` adds them up, exactly as a scrape of ``/metrics`` does; with
one process, the default registry holds them. Only the families an experiment reads
(service/experiments/metric_names.py) and only one model's series come out.
"""

from __future__ import annotations

from typing import Any

from service.experiments import metric_names as names
from service.experiments.window import Sample

READ = frozenset((*names.WINDOW_COUNTERS, names.LOADED_VERSION))


def collected_samples(registry: Any, model: str) -> list[Sample]:
    """The model's experiment series in a prometheus_client registry (``collect()``)."""
    return [
        Sample(s.name, dict(s.labels), float(s.value))
        for family in registry.collect()
        for s in family.samples
        if s.name in READ and s.labels.get(names.MODEL) == model
    ]


def gateway_samples(model: str, multiprocess_dir: str | None) -> list[Sample]:
    """The model's series summed over every worker of this gateway (or this process's)."""
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    if multiprocess_dir is None:
        return collected_samples(REGISTRY, model)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=multiprocess_dir)
    return collected_samples(registry, model)
