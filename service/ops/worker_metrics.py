"""What the pool, the watcher and the process report, written to the worker's metrics.

Every series a dashboard or an alert reads is created at start, at zero, so that
``increase()`` counts the first failure and a gauge never goes missing; then each event
of the pool (a swap, a target's version, a stale target) and of the watcher (a poll, a
changed registry version) updates its series here. Metric definitions live in
service/ops/metrics.py.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from registry_watcher.state import StateDiff
from registry_watcher.targets import Target
from service.experiments.feedback_items import Reason
from service.experiments.feedback_tally import FEEDBACK_RESULTS
from service.inference_log.log_counts import DROP_REASONS, EVENT_OUTCOMES, KINDS
from service.lifecycle.validation_writer import WRITE_RESULTS
from service.ops.metrics import Metrics
from service.ops.process_stats import read_process_stats

SWAP_RESULTS = ("success", "load_failed", "smoke_test_failed", "load_timeout", "unloaded")


class WorkerMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def create(self, targets: Mapping[str, tuple[Target, ...]], started_at: float) -> None:
        """Every per-target series at zero, every policy valid, the process published."""
        m = self._m
        for model, model_targets in targets.items():
            for target in model_targets:
                m.loaded_version.labels(model, target.text).set(0)
                m.target_ready.labels(model, target.text).set(0)
                m.registry_version.labels(model, target.text).set(0)
                m.target_stale.labels(model, target.text).set(0)
                for result in SWAP_RESULTS:
                    m.swaps.labels(model, target.text, result)
            m.policy_valid.labels(model).set(1)
            for refusal in Reason:
                m.feedback_refused.labels(model, refusal.value)
        for kind in KINDS:
            m.inference_log_rows.labels(kind)
        for destination, reasons in DROP_REASONS.items():
            for reason in reasons:
                m.inference_log_dropped.labels(destination, reason)
        for outcome in EVENT_OUTCOMES:
            m.inference_log_sink_events.labels(outcome)
        for result in WRITE_RESULTS:
            m.validation_writes.labels(result)
        m.registry_up.set(0)
        m.process_start.set(started_at)
        self.process_stats()

    def swap(self, model: str, target: Target, result: str, seconds: float) -> None:
        self._m.swaps.labels(model, target.text, result).inc()
        if result == "success" and seconds > 0:
            self._m.load_duration.labels(model).observe(seconds)

    def serving(self, model: str, target: Target, version: int | None) -> None:
        """The version a target serves now (None: nothing); its request series at zero,
        so that Prometheus's ``increase()`` counts its first requests (experiments)."""
        self._m.loaded_version.labels(model, target.text).set(version or 0)
        self._m.target_ready.labels(model, target.text).set(0 if version is None else 1)
        if version is not None:
            self._m.requests.labels(model, target.text, str(version), "success")
            self._m.request_duration.labels(model, target.text, str(version))
            self.feedback_series(model, target.text, str(version))

    def feedback_series(self, model: str, target: str, version: str) -> None:
        """The feedback and reward series of a version that serves, at zero, so that a
        rate over them starts from its first item."""
        m = self._m
        for result in FEEDBACK_RESULTS:
            m.feedback.labels(model, target, version, result)
        for counter in (
            m.reward_count,
            m.reward_positive_sum,
            m.reward_negative_sum,
            m.reward_squares_sum,
            m.reward_nonbinary,
        ):
            counter.labels(model, target, version)

    def stale(self, model: str, target: Target, reason: str | None) -> None:
        self._m.target_stale.labels(model, target.text).set(0 if reason is None else 1)

    def registry_changed(self, diff: StateDiff) -> None:
        for change in diff.target_changes:
            version = change.new.version if change.new else 0
            self._m.registry_version.labels(change.model, change.target.text).set(version)

    def polled(self, ok: bool, consecutive_failures: int) -> None:
        self._m.registry_polls.labels("success" if ok else "error").inc()
        self._m.registry_up.set(1 if ok else 0)
        self._m.registry_consecutive_failures.set(consecutive_failures)
        if ok:
            self._m.registry_last_success.set(time.time())

    def process_stats(self) -> None:
        stats = read_process_stats()
        self._m.process_memory.set(stats.resident_memory_bytes)
        self._m.process_cpu.set(stats.cpu_seconds)
        self._m.process_fds.set(stats.open_fds)
