"""One worker's gateway: builds the worker's parts, wires their events together, and
starts and stops them.

BentoML runs one of these per worker process. The parts do the work: the watcher feeds
the pool (service/lifecycle/), the request path answers predictions
(service/request_path.py), traffic control reads and changes policies
(service/traffic/control.py), the state view says what is served
(service/ops/state_view.py), the refresh relay turns webhooks into polls
(service/ops/refresh_relay.py), and the HTTP surface (service/api/) gets each endpoint
the part it needs. Workers share the registry, the runtime folder (readiness markers,
nudges, delivery ids, metric files, the request id key, feedback counted) and
``BENTOML_HOME``.
"""

from __future__ import annotations

import logging
import os
import time

from registry_watcher.reader import RegistryReader, poll_timeout_s
from registry_watcher.state import DesiredState, StateDiff
from registry_watcher.targets import Target
from registry_watcher.watcher import PollResult, RegistryWatcher
from service.api.admin import AdminApi
from service.api.connections import ConnectionRecycler
from service.api.experiment_route import ExperimentApi
from service.api.feedback import FeedbackApi
from service.api.invocations import Invocations
from service.api.rollout_routes import RolloutApi
from service.api.webhooks import WebhookApi
from service.cli.version import installed_version
from service.config import Settings
from service.experiments.baseline_store import BaselineStore
from service.experiments.feedback_intake import FeedbackIntake
from service.experiments.gateway_experiments import GatewayExperiments
from service.experiments.gateway_samples import gateway_samples
from service.experiments.request_id_key import signing_key
from service.experiments.request_ids import RequestIdSigner
from service.experiments.seen_feedback import seen_feedback
from service.inference.loaded_version import LoadedVersion
from service.inference_log.log_counts import MetricCounts
from service.inference_log.recorder import feedback_logger, inference_log_from
from service.lifecycle import heap
from service.lifecycle.availability import policy_for
from service.lifecycle.backoff import ExponentialBackoff
from service.lifecycle.loader import VersionLoader
from service.lifecycle.pool import Loader, ModelPool, PoolObserver
from service.lifecycle.validation_writer import RegistryVersionTags, ValidationWriter
from service.logs.access_log import AccessLog
from service.logs.log_limits import limit_per_request_warnings
from service.ops.metric_files import MetricFileSweeper, multiprocess_dir
from service.ops.metrics import get_metrics
from service.ops.nudge import WorkerNudge
from service.ops.readiness import WorkerReadiness
from service.ops.readiness_board import ReadinessBoard
from service.ops.refresh_relay import RefreshRelay
from service.ops.replay_store import replay_store
from service.ops.state_view import StateView
from service.ops.worker_metrics import WorkerMetrics
from service.request_path import RequestPath, ShadowLeg
from service.rollouts.embedded import embedded_controller
from service.rollouts.rollout_store import RegistryModelTags, RolloutStore
from service.traffic.control import TrafficControl
from service.traffic.policy_book import PolicyBook
from service.traffic.shadow import ShadowMirror, Tolerance

log = logging.getLogger("stageserve.runtime")


class Gateway:
    def __init__(
        self,
        settings: Settings,
        registry: RegistryReader | None = None,
        loader: Loader | None = None,
    ) -> None:
        self.settings = settings
        # Before this worker writes any metric: claim its pid's metric files, and forget
        # the per-process gauges of workers that died (service/ops/metric_files.py).
        self.metric_files = MetricFileSweeper(multiprocess_dir())
        self.metric_files.claim()
        self.metric_files.sweep()
        metrics = get_metrics()
        self.metrics = WorkerMetrics(metrics)
        self.started_at = time.time()
        limit_per_request_warnings()
        if settings.registry_uri:
            import mlflow

            mlflow.set_tracking_uri(settings.registry_uri)
            mlflow.set_registry_uri(settings.registry_uri)
        targets = settings.targets_by_model()

        # --- the model lifecycle: registry -> watcher -> pool
        # Smoke-test verdicts written back to the registry, when asked (off the load path).
        registry_timeout_s = poll_timeout_s(settings.poll_interval_s)
        self.validation = (
            ValidationWriter(
                RegistryVersionTags(settings.registry_uri, registry_timeout_s),
                installed_version("stageserve"),
                lambda result: metrics.validation_writes.labels(result).inc(),
            )
            if settings.write_validation
            else None
        )
        self.loader = loader or VersionLoader(
            settings.model_dir,
            settings.smoke_test,
            settings.max_batch,
            targets_of=lambda ref: [s.target.text for s in self.pool.slots() if s.desired == ref],
            on_smoke_test=self.validation.validated if self.validation else lambda r, e: None,
        )
        self.pool = ModelPool[LoadedVersion](
            targets,
            self.loader,
            required=lambda model, target: target == settings.required_target,
            retry=ExponentialBackoff(min(1.0, settings.poll_interval_s), settings.max_backoff_s),
            observer=PoolObserver[LoadedVersion](
                on_swap=self._on_swap, on_target=self._on_target, on_stale=self._on_stale
            ),
            availability=policy_for(settings.on_empty),
            load_timeout_s=settings.load_timeout_s,
        )
        self.registry = registry or RegistryReader(settings.registry_uri, registry_timeout_s)
        self.watcher = RegistryWatcher(
            self.registry,
            targets,
            poll_interval_s=settings.poll_interval_s,
            registry_uri=settings.registry_uri,
            on_poll=self._on_poll,
        )
        self.watcher.subscribe(self._on_registry)

        # --- traffic and the request path
        self.policies = PolicyBook(targets)
        self.traffic = TrafficControl(
            self.policies, self.pool, self.registry, metrics, self.watcher.refresh_now
        )
        shadow = ShadowLeg(self.pool, metrics)
        self.mirror = ShadowMirror(
            shadow.run,
            shadow.record,
            Tolerance(settings.shadow_rtol, settings.shadow_atol),
            settings.shadow_queue,
            settings.shadow_queue_bytes,
        )
        # Answers carry ids signed with who answered; feedback names them (service/experiments/).
        signer = RequestIdSigner(
            signing_key(settings.request_id_key, settings.runtime_dir), settings.feedback_max_age_s
        )
        self.requests = RequestPath(
            self.pool, self.policies.policy, self.mirror.submit, metrics, signer
        )
        self.inference_log = inference_log_from(
            settings, MetricCounts(metrics), os.getpid(), self.started_at
        )
        self.feedback_intake = FeedbackIntake(
            signer,
            seen_feedback(settings.runtime_dir),
            metrics,
            # Truths are not aggregated: with the inference log on, every item is kept there.
            None if self.inference_log is None else feedback_logger(self.inference_log),
        )

        # --- between workers, and what the gateway shows
        self.relay = RefreshRelay(self.pool.models, self.watcher.refresh_now, metrics)
        self.nudge = (
            WorkerNudge(settings.runtime_dir, self.relay.relayed) if settings.runtime_dir else None
        )
        if self.nudge is not None:
            self.relay.broadcast = self.nudge.broadcast
        self.readiness = WorkerReadiness(
            self.pool, ReadinessBoard(settings.runtime_dir, settings.workers)
        )
        self.view = StateView(
            self.pool,
            self.traffic.view,
            self.readiness,
            lambda: self.watcher.status,
            self.started_at,
        )

        # --- what each HTTP endpoint gets (service/api/)
        self.invocations = Invocations(
            self.requests,
            ConnectionRecycler(settings.keepalive_max_requests if settings.workers > 1 else 0),
            settings.max_body_bytes,
            settings.routing_key_header,
            AccessLog() if settings.access_log else None,
            self.inference_log,
        )
        self.admin = AdminApi(self.view, self.traffic, settings.admin_token)
        self.experiments = GatewayExperiments(
            BaselineStore(settings.runtime_dir) if settings.runtime_dir else None,
            lambda model: gateway_samples(model, multiprocess_dir()),
            self.policies.policy,
            self.started_at,
            lambda model, control, at: metrics.policy_changed.labels(model, control).set(at),
        )
        self.experiment_api = ExperimentApi(self.experiments, self.pool.models)
        # Rollouts decided in one worker (service/rollouts/embedded.py), unless off.
        self.controller = (
            embedded_controller(
                settings.runtime_dir,
                settings.registry_uri,
                registry_timeout_s,
                settings.controller_interval_s,
                self.experiments,
                self.pool.models,
                self.watcher.refresh_now,
            )
            if settings.controller == "embedded"
            else None
        )
        self.rollout_api = RolloutApi(
            RolloutStore(RegistryModelTags(settings.registry_uri, registry_timeout_s)),
            self.registry,
            self.traffic,
            settings.admin_token,
        )
        self.feedback = FeedbackApi(
            self.feedback_intake,
            self.pool.models,
            lambda: self.requests.model_for_default_route("feedback"),
            settings.feedback_token,
            settings.max_body_bytes,
        )
        self.webhooks = WebhookApi(
            self.relay,
            settings.webhook_secret,
            settings.webhook_tolerance_s,
            replay_store(settings.runtime_dir) if settings.webhook_secret else None,
        )

        self.metrics.create(targets, self.started_at)
        for model in targets:
            self.traffic.publish_weights(model)

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        if self.nudge is not None:
            self.nudge.start()
        self.mirror.start()
        if self.inference_log is not None:
            self.inference_log.start()
        if self.validation is not None:
            self.validation.start()
        self.pool.start()
        self.watcher.start()
        if self.controller is not None:
            self.controller.start()

    def stop(self) -> None:
        self.readiness.withdraw()
        if self.controller is not None:
            self.controller.stop()
        if self.inference_log is not None:
            self.inference_log.stop()  # every accepted row written, files completed (bounded)
        self.watcher.stop()
        self.pool.stop()
        if self.validation is not None:
            self.validation.stop()
        self.mirror.stop()
        if self.nudge is not None:
            self.nudge.stop()
        if isinstance(self.loader, VersionLoader):
            self.loader.close()  # downloaded versions go with the worker
        self.feedback_intake.close()

    def is_ready(self) -> bool:
        """Ready when this worker and every other worker of the gateway are (BentoML's
        own readiness probe asks this)."""
        return self.readiness.is_ready()

    # --- events of the pool and the watcher -------------------------------------------

    def _on_swap(self, model: str, target: Target, result: str, seconds: float) -> None:
        self.metrics.swap(model, target, result, seconds)
        if result in ("success", "unloaded"):
            heap.settle()  # the loaded set changed: one full GC now, none under load
        if result == "success":
            self.relay.swapped()

    def _on_target(self, model: str, target: Target, loaded: LoadedVersion | None) -> None:
        self.readiness.publish()
        self.traffic.publish_weights(model)
        self.metrics.serving(model, target, loaded.ref.version if loaded else None)

    def _on_stale(self, model: str, target: Target, reason: str | None) -> None:
        self.metrics.stale(model, target, reason)

    def _on_registry(self, state: DesiredState, diff: StateDiff) -> None:
        # The policy first: a promotion's {control: 100} read in the same poll as the
        # transition emptying the candidate's target must be in force before the pool
        # unloads that target (its observers take time: a full GC), or requests fail.
        for model in diff.tag_changes:
            model_state = state.models.get(model)
            if model_state is not None:
                self.traffic.apply_tags(model, model_state.tags)
        self.pool.apply(state)
        self.metrics.registry_changed(diff)
        self.experiments.policies_applied(self.pool.models())

    def _on_poll(self, result: PollResult) -> None:
        self.metrics.process_stats()
        # Housekeeping a killed worker cannot do for itself, and a marker lost (a wiped
        # runtime folder) comes back within a poll.
        try:
            self.readiness.publish()
            self.metric_files.sweep()
            if self.nudge is not None:
                self.nudge.sweep()
        except OSError as exc:  # e.g. a runtime folder made unwritable
            log.warning("worker housekeeping failed: %s", exc)
        self.metrics.polled(result.ok, self.watcher.status.consecutive_failures)
