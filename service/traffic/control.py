"""Traffic control: read, check and change a model's traffic policy.

The admin API and the registry watcher change policies through this object, never
through the policy book directly, so that every change is applied the same way: the
book updated, the weight gauges republished, the registry read again after a write.
A write goes to the registry first (the registered-model tag ``stageserve.traffic``);
nothing is applied here when it fails, so replicas never disagree because of a
half-done write. Errors are domain errors; service/errors.py says how they are answered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from registry_watcher.targets import Target
from registry_watcher.traffic_policy import POLICY_TAG, TrafficPolicy
from service.lifecycle.servable import LoadedVersions, Servable
from service.ops.metrics import Metrics
from service.traffic.policy_book import ADMIN, PolicyBook, PolicyRecord
from service.traffic.router import available_targets, effective_shares

log = logging.getLogger("stageserve.traffic")


class PolicyWriteFailed(Exception):
    """The registry refused or could not take the policy tag; nothing changed."""


class TagWriter(Protocol):
    """The registry, as far as writing a model's tags goes."""

    def set_model_tag(self, model: str, key: str, value: str) -> None: ...

    def delete_model_tag(self, model: str, key: str) -> None: ...


@dataclass(frozen=True)
class TrafficView:
    """A model's policy, where it came from, and the share each target takes now."""

    model: str
    record: PolicyRecord
    # Every target of the model, in its configured order, with its effective share.
    shares: tuple[tuple[Target, float], ...]


class TrafficControl:
    def __init__(
        self,
        book: PolicyBook,
        pool: LoadedVersions[Servable],
        registry: TagWriter,
        metrics: Metrics,
        after_write: Callable[[], None] = lambda: None,
    ) -> None:
        self.book = book
        self._pool = pool
        self._registry = registry
        self._metrics = metrics
        self._after_write = after_write  # e.g. read the registry back now

    def serves(self, model: str) -> bool:
        return model in self._pool.models()

    def models(self) -> tuple[str, ...]:
        return self._pool.models()

    def check(self, model: str, policy: TrafficPolicy) -> None:
        """Raise PolicyError unless every target of the policy is served for this model."""
        self.book.validate(model, policy)

    def write(self, model: str, policy: TrafficPolicy | None) -> PolicyRecord:
        """Write (or with None, delete) the policy tag in the registry, then apply it here.

        Raises PolicyWriteFailed, with nothing applied, when the registry write fails."""
        try:
            if policy is None:
                self._registry.delete_model_tag(model, POLICY_TAG)
            else:
                self._registry.set_model_tag(model, POLICY_TAG, policy.to_json())
        except Exception as exc:
            raise PolicyWriteFailed(
                f"Could not write the policy to the registry, nothing changed: {exc}"
            ) from None
        record = self.book.reset(model) if policy is None else self.book.set(model, policy, ADMIN)
        self.publish_weights(model)
        self._after_write()
        return record

    def apply_tags(self, model: str, tags: Mapping[str, str]) -> None:
        """What the registry's tags of a model say now (a bad tag keeps the last good
        policy, counted and logged)."""
        record, changed = self.book.from_tags(model, tags)
        if record.error:
            self._metrics.policy_errors.labels(model).inc()
            log.error("%s: %s; keeping the last good policy", model, record.error)
        self._metrics.policy_valid.labels(model).set(0 if record.error else 1)
        if changed:
            log.info("%s: traffic policy from the registry: %s", model, record.policy.to_json())
        self.publish_weights(model)

    def view(self, model: str) -> TrafficView:
        record = self.book.get(model)
        targets = self._pool.targets(model)
        shares = self._effective(model, record.policy)
        return TrafficView(model, record, tuple((t, shares.get(t, 0.0)) for t in targets))

    def publish_weights(self, model: str) -> None:
        """The effective and configured weight gauges of a model's targets."""
        policy = self.book.policy(model)
        shares = self._effective(model, policy)
        configured = policy.shares()
        for target in self._pool.targets(model):
            self._metrics.traffic_weight.labels(model, target.text).set(shares.get(target, 0.0))
            self._metrics.traffic_configured_weight.labels(model, target.text).set(
                configured.get(target, 0.0)
            )

    def _effective(self, model: str, policy: TrafficPolicy) -> dict[Target, float]:
        targets = self._pool.targets(model)
        return effective_shares(
            policy, available_targets(targets, lambda t: self._pool.get(model, t))
        )
