"""Which traffic policy each served model follows, where it came from, and what went wrong.

The policy lives in the registry as the registered-model tag ``stageserve.traffic``.
A model without the tag sends everything to its first target. A tag that does not
parse, or names targets this gateway does not serve, never breaks serving: the last
good policy stays and the error is kept for /admin/models and metrics.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from registry_watcher.targets import Target
from registry_watcher.traffic_policy import (
    POLICY_TAG,
    PolicyError,
    TrafficPolicy,
    check_targets,
    default_policy,
    parse_policy,
)

DEFAULT = "default"  # no tag: all traffic to the first target
REGISTRY = "registry"  # the tag, as read by the watcher
ADMIN = "admin"  # written through this gateway's admin API, not yet read back


@dataclass(frozen=True)
class PolicyRecord:
    policy: TrafficPolicy
    source: str
    tag_value: str | None
    updated_at: float
    error: str | None = None  # the last bad tag's problem, while the last good policy serves


class PolicyBook:
    def __init__(self, targets: Mapping[str, tuple[Target, ...]]) -> None:
        self._targets = dict(targets)
        self._records: dict[str, PolicyRecord] = {
            model: PolicyRecord(default_policy(ts[0]), DEFAULT, None, time.time())
            for model, ts in self._targets.items()
        }
        self._lock = threading.Lock()

    def get(self, model: str) -> PolicyRecord:
        return self._records[model]

    def policy(self, model: str) -> TrafficPolicy:
        return self._records[model].policy

    def validate(self, model: str, policy: TrafficPolicy) -> None:
        """Raise PolicyError unless every target of the policy is served for this model."""
        check_targets(policy, self._targets[model])

    def set(self, model: str, policy: TrafficPolicy, source: str) -> PolicyRecord:
        """Apply a validated policy now (admin writes)."""
        self.validate(model, policy)
        tag_value = None if source == DEFAULT else policy.to_json()
        with self._lock:
            record = PolicyRecord(policy, source, tag_value, time.time())
            self._records[model] = record
        return record

    def reset(self, model: str) -> PolicyRecord:
        return self.set(model, default_policy(self._targets[model][0]), DEFAULT)

    def from_tags(self, model: str, tags: Mapping[str, str]) -> tuple[PolicyRecord, bool]:
        """Apply what the registry's tags say. Returns (record, changed); a bad tag keeps
        the last good policy and records the error (changed is then False)."""
        value = tags.get(POLICY_TAG)
        with self._lock:
            current = self._records[model]
            if value is None:
                if current.source == DEFAULT and current.error is None:
                    return current, False
                record = PolicyRecord(
                    default_policy(self._targets[model][0]), DEFAULT, None, time.time()
                )
                self._records[model] = record
                return record, True
            if value == current.tag_value and current.source in (REGISTRY, ADMIN):
                if current.source == ADMIN:  # read back: the registry now says the same
                    current = PolicyRecord(current.policy, REGISTRY, value, current.updated_at)
                    self._records[model] = current
                return current, False
            try:
                policy = parse_policy(value)
                check_targets(policy, self._targets[model])
            except PolicyError as exc:
                error = f"tag {POLICY_TAG} ignored: {exc}"
                record = PolicyRecord(current.policy, current.source, current.tag_value,
                                      current.updated_at, error)  # fmt: skip
                self._records[model] = record
                return record, False
            record = PolicyRecord(policy, REGISTRY, value, time.time())
            self._records[model] = record
            return record, True
