"""Every stageserve metric, defined in one place.

Metrics are created on first use inside a worker, not at import: ``bentoml serve``
imports the service in its supervisor process too, and in Prometheus multiprocess
mode a gauge created there would report a stale value for as long as it lives.
Gauges carry an explicit multiprocess mode so that ``workers > 1`` adds up right.
Labels are low-cardinality: configured model names, target names, version numbers
and fixed outcome words; never anything a client sends.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported for real in _create: prometheus_client picks its value
    # store (multiprocess or not) when first imported, so only once BentoML set it up.
    from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075,
    0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
LOAD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


@dataclass(frozen=True)
class Metrics:
    requests: Counter
    request_duration: Histogram
    in_flight: Gauge
    loaded_version: Gauge
    target_ready: Gauge
    swaps: Counter
    load_duration: Histogram
    registry_polls: Counter
    registry_up: Gauge
    registry_last_success: Gauge
    registry_consecutive_failures: Gauge
    traffic_weight: Gauge
    traffic_configured_weight: Gauge
    routing: Counter
    policy_valid: Gauge
    policy_errors: Counter
    shadow: Counter
    webhooks: Counter
    webhook_refreshes: Counter
    webhook_to_serving: Histogram
    registry_version: Gauge
    process_memory: Gauge
    process_cpu: Gauge
    process_fds: Gauge
    process_start: Gauge
    target_stale: Gauge
    policy_changed: Gauge
    feedback: Counter
    feedback_refused: Counter
    reward_count: Counter
    reward_positive_sum: Counter
    reward_negative_sum: Counter
    reward_squares_sum: Counter
    reward_nonbinary: Counter
    inference_log_rows: Counter
    inference_log_dropped: Counter
    inference_log_files: Counter
    inference_log_sink_events: Counter
    validation_writes: Counter


_metrics: Metrics | None = None
_lock = threading.Lock()


def _create() -> Metrics:
    from prometheus_client import Counter, Gauge, Histogram

    return Metrics(
        requests=Counter(
            "stageserve_requests_total",
            "Prediction requests by model, serving target, version and outcome.",
            ["model", "target", "version", "outcome"],
        ),
        request_duration=Histogram(
            "stageserve_request_duration_seconds",
            "Prediction request latency inside the gateway, by model, target and version.",
            ["model", "target", "version"],
            buckets=LATENCY_BUCKETS,
        ),
        in_flight=Gauge(
            "stageserve_in_flight_requests",
            "Prediction requests being processed now.",
            ["model"],
            multiprocess_mode="livesum",
        ),
        loaded_version=Gauge(
            "stageserve_loaded_version",
            "Version number serving each target (0: nothing loaded). Max over workers.",
            ["model", "target"],
            multiprocess_mode="livemax",
        ),
        target_ready=Gauge(
            "stageserve_target_ready",
            "1 when every worker has a version loaded for the target, else 0.",
            ["model", "target"],
            multiprocess_mode="livemin",
        ),
        swaps=Counter(
            "stageserve_swaps_total",
            "Target changes by result: success, load_failed, smoke_test_failed, load_timeout, "
            "unloaded.",
            ["model", "target", "result"],
        ),
        load_duration=Histogram(
            "stageserve_model_load_duration_seconds",
            "Time to download, load and smoke-test a model version.",
            ["model"],
            buckets=LOAD_BUCKETS,
        ),
        registry_polls=Counter(
            "stageserve_registry_polls_total",
            "Registry polls by outcome (success, error).",
            ["outcome"],
        ),
        registry_up=Gauge(
            "stageserve_registry_up",
            "1 when the last registry poll of every worker succeeded, else 0.",
            multiprocess_mode="livemin",
        ),
        registry_last_success=Gauge(
            "stageserve_registry_last_success_timestamp_seconds",
            "Unix time of the last successful registry poll (latest over workers).",
            multiprocess_mode="livemax",
        ),
        registry_consecutive_failures=Gauge(
            "stageserve_registry_consecutive_failures",
            "Registry polls failed in a row (max over workers).",
            multiprocess_mode="livemax",
        ),
        traffic_weight=Gauge(
            "stageserve_traffic_weight",
            "Effective share of traffic per target (0-1): the policy's weights over the "
            "targets that have a version loaded.",
            ["model", "target"],
            multiprocess_mode="livemax",
        ),
        traffic_configured_weight=Gauge(
            "stageserve_traffic_configured_weight",
            "Share of traffic the policy gives each target (0-1), loaded or not.",
            ["model", "target"],
            multiprocess_mode="livemax",
        ),
        routing=Counter(
            "stageserve_routing_decisions_total",
            "Successful predictions by how the target was chosen: random, sticky, override.",
            ["model", "target", "how"],
        ),
        policy_valid=Gauge(
            "stageserve_traffic_policy_valid",
            "0 while the registry's policy tag is invalid and the last good policy serves.",
            ["model"],
            multiprocess_mode="livemin",
        ),
        policy_errors=Counter(
            "stageserve_traffic_policy_errors_total",
            "Invalid traffic policy tags read from the registry.",
            ["model"],
        ),
        shadow=Counter(
            "stageserve_shadow_requests_total",
            "Mirrored requests by outcome: agree, disagree, error, dropped (queue full).",
            ["model", "target", "shadow_target", "outcome"],
        ),
        webhooks=Counter(
            "stageserve_webhooks_total",
            "MLflow webhook deliveries by outcome: accepted, bad_signature, stale, replay, "
            "malformed, disabled.",
            ["outcome"],
        ),
        webhook_refreshes=Counter(
            "stageserve_webhook_refreshes_total",
            "Immediate registry reads triggered by a webhook, on this worker or relayed "
            "from another (source: webhook, relay).",
            ["source"],
        ),
        webhook_to_serving=Histogram(
            "stageserve_webhook_to_serving_seconds",
            "Time from a webhook (or its relay) to the new version serving on a worker.",
            buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0),
        ),
        registry_version=Gauge(
            "stageserve_registry_version",
            "Version the registry puts in each target (0: none), whether or not it loaded.",
            ["model", "target"],
            multiprocess_mode="livemax",
        ),
        process_memory=Gauge(
            "stageserve_process_resident_memory_bytes",
            "Resident memory of each worker process.",
            multiprocess_mode="liveall",
        ),
        process_cpu=Gauge(
            "stageserve_process_cpu_seconds",
            "CPU time (user + system) each worker process has used.",
            multiprocess_mode="liveall",
        ),
        process_fds=Gauge(
            "stageserve_process_open_fds",
            "Open file descriptors of each worker process.",
            multiprocess_mode="liveall",
        ),
        process_start=Gauge(
            "stageserve_process_start_time_seconds",
            "Unix time each worker process started (restarts show as a new value).",
            multiprocess_mode="liveall",
        ),
        target_stale=Gauge(
            "stageserve_target_stale",
            "1 while a required target serves a version the registry no longer names "
            "(model gone, stage or alias emptied: fail static), else 0. Max over workers.",
            ["model", "target"],
            multiprocess_mode="livemax",
        ),
        policy_changed=Gauge(
            "stageserve_traffic_policy_changed_timestamp_seconds",
            "Unix time the traffic policy in force was first applied (the start of its "
            "experiment's window), labelled with its control (first target); the newest "
            "is the policy in force. Max over workers.",
            ["model", "control"],
            multiprocess_mode="livemax",
        ),
        feedback=Counter(
            "stageserve_feedback_total",
            "Feedback items by the model, target and version that answered their request, "
            "and result: accepted, or duplicate (already counted, by any worker).",
            ["model", "target", "version", "result"],
        ),
        feedback_refused=Counter(
            "stageserve_feedback_refused_total",
            "Feedback refused, by served model (another name is a 404) and reason: "
            "unsigned, malformed, forged, expired, wrong_model, invalid (items), "
            "unauthorized (posts).",
            ["model", "reason"],
        ),
        reward_count=Counter(
            "stageserve_reward_count_total",
            "Rewards counted, by the model, target and version that answered.",
            ["model", "target", "version"],
        ),
        reward_positive_sum=Counter(
            "stageserve_reward_positive_sum_total",
            "Sum of the positive rewards; the reward sum is this minus "
            "stageserve_reward_negative_sum_total.",
            ["model", "target", "version"],
        ),
        reward_negative_sum=Counter(
            "stageserve_reward_negative_sum_total",
            "Sum of the magnitudes of the negative rewards (counters never decrease).",
            ["model", "target", "version"],
        ),
        reward_squares_sum=Counter(
            "stageserve_reward_squares_sum_total",
            "Sum of the squared rewards (the variance's other half).",
            ["model", "target", "version"],
        ),
        reward_nonbinary=Counter(
            "stageserve_reward_nonbinary_total",
            "Rewards other than 0 and 1 (0: the rewards are binary).",
            ["model", "target", "version"],
        ),
        inference_log_rows=Counter(
            "stageserve_inference_log_rows_total",
            "Rows written to the inference log's Parquet files, by kind: prediction, feedback.",
            ["kind"],
        ),
        inference_log_dropped=Counter(
            "stageserve_inference_log_dropped_total",
            "Inference log rows a destination (file, sink) will never have, by reason: "
            "queue_full, stopped, write_error, sink_error.",
            ["destination", "reason"],
        ),
        inference_log_files=Counter(
            "stageserve_inference_log_files_total",
            "Inference log Parquet files completed (closed and renamed, readable).",
        ),
        inference_log_sink_events=Counter(
            "stageserve_inference_log_sink_events_total",
            "CloudEvents posted to the inference log's HTTP sink, by outcome: sent, failed.",
            ["outcome"],
        ),
        validation_writes=Counter(
            "stageserve_validation_writes_total",
            "Smoke-test verdicts written back to the registry as stageserve.validation tags, "
            "by result: written, skipped (the tags already said so), failed.",
            ["result"],
        ),
    )


def get_metrics() -> Metrics:
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                _metrics = _create()
    return _metrics


@dataclass(frozen=True)
class RolloutMetrics:
    """The controller's metrics (service/rollouts/controller.py): exported by the worker
    running the embedded controller, or by ``stageserve controller`` on its own port.
    Created apart from ``Metrics`` so that the standalone controller exports only these."""

    rollout_step: Gauge
    rollout_phase: Gauge
    rollout_gate_value: Gauge
    rollout_decisions: Counter
    bandit_weight: Gauge
    controller_ticks: Counter


_rollout_metrics: RolloutMetrics | None = None


def _create_rollout_metrics() -> RolloutMetrics:
    from prometheus_client import Counter, Gauge

    return RolloutMetrics(
        rollout_step=Gauge(
            "stageserve_rollout_step",
            "The rollout's current step, 1-based (0 in the shadow phase, -1 without a "
            "rollout); a finished rollout shows the step it ended at.",
            ["model"],
            multiprocess_mode="livemax",
        ),
        rollout_phase=Gauge(
            "stageserve_rollout_phase",
            "1 for the rollout's current phase (shadow, step, awaiting_approval, promoted, "
            "rolled_back, aborted), 0 for the others.",
            ["model", "phase"],
            multiprocess_mode="livemax",
        ),
        rollout_gate_value=Gauge(
            "stageserve_rollout_gate_value",
            "The figures the gates judged at the last tick, by gate: error_rate_increase, "
            "p99_ratio, reward_difference, shadow_agreement.",
            ["model", "gate"],
            multiprocess_mode="livemax",
        ),
        rollout_decisions=Counter(
            "stageserve_rollout_decisions_total",
            "Rollout decisions seen in the registry, by move: start, advance, promote, "
            "roll_back, await_approval, finish_shadow, abort, approve.",
            ["model", "move"],
        ),
        bandit_weight=Gauge(
            "stageserve_bandit_weight",
            "The share of traffic the bandit computed for each arm at its last interval "
            "(0 to 1; written as the traffic policy when a share moved enough).",
            ["model", "target"],
            multiprocess_mode="livemax",
        ),
        controller_ticks=Counter(
            "stageserve_controller_ticks_total",
            "Controller ticks, by result: ok (per model with a rollout or bandit it judged, "
            "or one per tick with nothing to decide), error (registry or plan unreadable), "
            "not_leader (another controller holds the lease).",
            ["result"],
        ),
    )


def get_rollout_metrics() -> RolloutMetrics:
    global _rollout_metrics
    if _rollout_metrics is None:
        with _lock:
            if _rollout_metrics is None:
                _rollout_metrics = _create_rollout_metrics()
    return _rollout_metrics
