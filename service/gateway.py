"""One worker's gateway: the watcher feeding the pool, the request path, the state view.

BentoML runs one of these per worker process; workers share nothing but the registry.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from registry_watcher.deliveries import ACCEPTED, Verdict
from registry_watcher.reader import RegistryReader, poll_timeout_s
from registry_watcher.redact import redact, redact_tree
from registry_watcher.state import DesiredState, StateDiff
from registry_watcher.targets import Target, parse_target
from registry_watcher.traffic_policy import POLICY_TAG, TrafficPolicy
from registry_watcher.watcher import PollResult, RegistryWatcher
from service.api.connections import ConnectionRecycler
from service.api.header_values import header_value
from service.config import Settings
from service.errors import ServingError, bad_request, not_found, unavailable
from service.inference.loaded_version import LoadedVersion
from service.lifecycle import heap
from service.lifecycle.availability import policy_for
from service.lifecycle.backoff import ExponentialBackoff
from service.lifecycle.loader import VersionLoader
from service.lifecycle.pool import Loader, ModelPool, PoolObserver
from service.ops.log_limits import limit_per_request_warnings
from service.ops.metric_files import MetricFileSweeper, multiprocess_dir
from service.ops.metrics import get_metrics
from service.ops.nudge import WorkerNudge
from service.ops.process_stats import read_process_stats
from service.ops.readiness_board import ReadinessBoard
from service.traffic import pinning as routing
from service.traffic import router as traffic
from service.traffic.policy_book import ADMIN, PolicyBook, PolicyRecord
from service.traffic.shadow import ShadowJob, ShadowMirror, Tolerance

log = logging.getLogger("stageserve.runtime")

# A shadow request waits this long at most for its version's batcher (the loop may stop).
SHADOW_TIMEOUT_S = 60.0
SWAP_RESULTS = ("success", "load_failed", "smoke_test_failed", "load_timeout", "unloaded")


@dataclass(frozen=True)
class Answer:
    """A prediction response: body plus the headers that say who answered."""

    body: bytes
    model: str
    target: Target
    version: int

    def headers(self) -> dict[str, str]:
        # A name outside Latin-1 cannot be a header value as is (service/api/header_values.py).
        return {
            "X-Model-Name": header_value(self.model),
            "X-Model-Version": str(self.version),
            "X-Model-Target": header_value(self.target.text),
        }


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


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
        self.metrics = get_metrics()
        self.started_at = time.time()
        limit_per_request_warnings()
        if settings.registry_uri:
            import mlflow

            mlflow.set_tracking_uri(settings.registry_uri)
            mlflow.set_registry_uri(settings.registry_uri)
        targets = settings.targets_by_model()
        self.loader = loader or VersionLoader(
            settings.model_dir, settings.smoke_test, settings.max_batch
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
        self.registry = registry or RegistryReader(
            settings.registry_uri, poll_timeout_s(settings.poll_interval_s)
        )
        self.policies = PolicyBook(targets)
        self.mirror = ShadowMirror(
            self._run_shadow,
            self._record_shadow,
            Tolerance(settings.shadow_rtol, settings.shadow_atol),
            settings.shadow_queue,
            settings.shadow_queue_bytes,
        )
        self.watcher = RegistryWatcher(
            self.registry,
            targets,
            poll_interval_s=settings.poll_interval_s,
            registry_uri=settings.registry_uri,
            on_poll=self._on_poll,
        )
        self.watcher.subscribe(self._on_registry)
        self.nudge = (
            WorkerNudge(settings.runtime_dir, self._on_relay) if settings.runtime_dir else None
        )
        self._refresh_asked_at: float | None = None
        self.board = ReadinessBoard(settings.runtime_dir, settings.workers)
        self._board_lock = threading.Lock()
        self._stopping = False
        self.connections = ConnectionRecycler(
            settings.keepalive_max_requests if settings.workers > 1 else 0
        )
        for model, model_targets in targets.items():
            for target in model_targets:
                self.metrics.loaded_version.labels(model, target.text).set(0)
                self.metrics.target_ready.labels(model, target.text).set(0)
                self.metrics.registry_version.labels(model, target.text).set(0)
                self.metrics.target_stale.labels(model, target.text).set(0)
                for result in SWAP_RESULTS:
                    # Series exist from the start, so increase() counts the first failure.
                    self.metrics.swaps.labels(model, target.text, result)
            self.metrics.policy_valid.labels(model).set(1)
            self._refresh_weights(model)
        self.metrics.registry_up.set(0)
        self.metrics.process_start.set(self.started_at)
        self._publish_process_stats()

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        if self.nudge is not None:
            self.nudge.start()
        self.mirror.start()
        self.pool.start()
        self.watcher.start()

    def stop(self) -> None:
        with self._board_lock:
            self._stopping = True  # no poll or swap posts the marker again
            self.board.publish(False)
        self.watcher.stop()
        self.pool.stop()
        self.mirror.stop()
        if self.nudge is not None:
            self.nudge.stop()
        if isinstance(self.loader, VersionLoader):
            self.loader.close()  # downloaded versions go with the worker

    # What service/lifecycle/warm_start.py asks while a (re)started worker keeps off the socket.

    def is_loaded(self) -> bool:
        """Whether this worker has its required targets loaded."""
        return self.pool.is_ready()

    def ready_siblings(self) -> int:
        return self.board.other_ready_workers()

    def standby(self, waiting: bool) -> None:
        self.board.standby(waiting)

    def _publish_readiness(self) -> None:
        """Post this worker's marker as it is now (pool thread and watcher thread)."""
        with self._board_lock:
            self.board.publish(self.pool.is_ready() and not self._stopping)

    def is_ready(self) -> bool:
        """Ready when this worker and every other worker of the gateway are."""
        return self.pool.is_ready() and self.board.unready_reason() is None

    def unready_reasons(self) -> list[str]:
        reasons = self.pool.unready_reasons()
        if not reasons:
            workers = self.board.unready_reason()
            if workers is not None:
                reasons = [workers]
        return [redact(reason) for reason in reasons]  # load errors quote artifact URLs

    # --- request path -----------------------------------------------------------------

    def model_for_default_route(self) -> str:
        models = self.pool.models()
        if len(models) == 1:
            return models[0]
        routes = ", ".join(f"/models/{m}/invocations" for m in models)
        raise bad_request(
            f"This gateway serves {len(models)} models, so /invocations is ambiguous. "
            f"Use one of: {routes}."
        )

    async def invoke(
        self,
        model: str,
        override: str | None,
        body: bytes,
        content_type: str | None,
        routing_key: str | None = None,
    ) -> Answer:
        """Answer one prediction request. Routing and metrics run on the event loop (no
        I/O, microseconds); parsing and predicting run in the version's batcher thread.
        Queues the shadow copy, if any, once the answer is ready."""
        started = time.perf_counter()
        targets = self.pool.targets(model)
        if not targets:
            served = ", ".join(self.pool.models())
            self.metrics.requests.labels("", "", "", "not_found").inc()
            raise not_found(f"Model {model!r} is not served here. Served models: {served}.")
        label_target, label_version = "", ""
        self.metrics.in_flight.labels(model).inc()
        try:
            target, loaded, how, shadow = self._route(model, targets, override, routing_key)
            label_target, label_version = target.text, str(loaded.ref.version)
            payload = await loaded.submit(body, content_type)
        except ServingError as exc:
            self.metrics.requests.labels(model, label_target, label_version, exc.outcome).inc()
            raise
        except asyncio.CancelledError:  # BentoML's request timeout (a 504) cancelled it
            self.metrics.requests.labels(model, label_target, label_version, "timeout").inc()
            raise
        except Exception:  # answered as a 500
            self.metrics.requests.labels(model, label_target, label_version, "error").inc()
            raise
        finally:
            self.metrics.in_flight.labels(model).dec()
        self.metrics.requests.labels(model, label_target, label_version, "success").inc()
        self.metrics.request_duration.labels(model, label_target, label_version).observe(
            time.perf_counter() - started
        )
        self.metrics.routing.labels(model, label_target, how).inc()
        if shadow is not None:
            loop = asyncio.get_running_loop()
            self.mirror.submit(
                ShadowJob(model, label_target, shadow.text, body, content_type, payload, loop)
            )
        return Answer(payload, model, target, loaded.ref.version)

    def count_refused(self, model: str | None, outcome: str) -> None:
        """Count a prediction request that ended before ``invoke`` (no model to route to,
        body too large, timed out or failed while reading the body). Only a served
        model's name becomes a label."""
        served = model if model is not None and self.pool.targets(model) else ""
        self.metrics.requests.labels(served, "", "", outcome).inc()

    def _route(
        self, model: str, targets: tuple[Target, ...], override: str | None, key: str | None
    ) -> tuple[Target, LoadedVersion, str, Target | None]:
        """(target, version, how, shadow target) for one request."""
        if override is not None:
            route = routing.pin(model, targets, lambda t: self.pool.get(model, t), override)
            return route.target, route.loaded, "override", None
        policy = self.policies.policy(model)
        for _ in range(3):  # a target can be emptied between the decision and the lookup
            try:
                decision = traffic.decide(policy, self._available(model, targets), key)
            except traffic.NoTargetAvailable as exc:
                raise unavailable(f"Model {model!r}: {exc}") from None
            loaded = self.pool.get(model, decision.target)
            if loaded is not None:
                return decision.target, loaded, decision.how, decision.shadow
        raise unavailable(f"Model {model!r}: its targets keep changing; retry.")

    def _available(self, model: str, targets: tuple[Target, ...]) -> frozenset[Target]:
        return frozenset(t for t in targets if self.pool.get(model, t) is not None)

    # --- traffic policy ---------------------------------------------------------------

    def write_policy(self, model: str, policy: TrafficPolicy | None) -> PolicyRecord:
        """Write (or with None, delete) the policy tag in the registry, then apply it here.

        Nothing is applied when the registry write fails."""
        try:
            if policy is None:
                self.registry.delete_model_tag(model, POLICY_TAG)
            else:
                self.registry.set_model_tag(model, POLICY_TAG, policy.to_json())
        except Exception as exc:
            raise ServingError(
                503,
                "TEMPORARILY_UNAVAILABLE",
                f"Could not write the policy to the registry, nothing changed: {exc}",
                outcome="unavailable",
            ) from None
        record = (
            self.policies.reset(model)
            if policy is None
            else self.policies.set(model, policy, ADMIN)
        )
        self._refresh_weights(model)
        self.watcher.refresh_now()
        return record

    def traffic_view(self, model: str) -> dict[str, Any]:
        record = self.policies.get(model)
        targets = self.pool.targets(model)
        shares = traffic.effective_shares(record.policy, self._available(model, targets))
        return {
            "model": model,
            "tag": POLICY_TAG,
            "policy": record.policy.to_dict(),
            "source": record.source,
            "updated_at": _iso(record.updated_at),
            "error": record.error,
            "effective_shares": {t.text: round(shares.get(t, 0.0), 6) for t in targets},
        }

    def _refresh_weights(self, model: str) -> None:
        policy = self.policies.policy(model)
        targets = self.pool.targets(model)
        shares = traffic.effective_shares(policy, self._available(model, targets))
        configured = policy.shares()
        for target in targets:
            self.metrics.traffic_weight.labels(model, target.text).set(shares.get(target, 0.0))
            self.metrics.traffic_configured_weight.labels(model, target.text).set(
                configured.get(target, 0.0)
            )

    def _on_registry(self, state: DesiredState, diff: StateDiff) -> None:
        self.pool.apply(state)
        for change in diff.target_changes:
            version = change.new.version if change.new else 0
            self.metrics.registry_version.labels(change.model, change.target.text).set(version)
        for model in diff.tag_changes:
            model_state = state.models.get(model)
            if model_state is None:
                continue
            record, changed = self.policies.from_tags(model, model_state.tags)
            if record.error:
                self.metrics.policy_errors.labels(model).inc()
                log.error("%s: %s; keeping the last good policy", model, record.error)
            self.metrics.policy_valid.labels(model).set(0 if record.error else 1)
            if changed:
                log.info("%s: traffic policy from the registry: %s", model, record.policy.to_json())
            self._refresh_weights(model)

    # --- webhooks ---------------------------------------------------------------------

    def webhook_outcome(self, outcome: str) -> None:
        self.metrics.webhooks.labels(outcome).inc()

    def webhook_received(self, verdict: Verdict) -> None:
        """A delivery was checked: on acceptance, read the registry now, on every worker."""
        self.webhook_outcome(verdict.outcome)
        if verdict.outcome != ACCEPTED:
            log.warning("webhook refused (%s): %s", verdict.outcome, verdict.message)
            return
        if verdict.model is not None and verdict.model not in self.pool.models():
            return  # about a model this gateway does not serve
        self._refresh(source="webhook")
        if self.nudge is not None:
            self.nudge.broadcast()

    def _on_relay(self) -> None:
        self._refresh(source="relay")

    def _refresh(self, source: str) -> None:
        self._refresh_asked_at = time.monotonic()
        self.metrics.webhook_refreshes.labels(source).inc()
        self.watcher.refresh_now()

    # --- shadow -----------------------------------------------------------------------

    def _run_shadow(self, job: ShadowJob) -> bytes:
        """In the mirror's thread: through the shadow version's batcher on the loop that
        answered the primary, so that version never runs two predicts at once."""
        loaded = self.pool.get(job.model, parse_target(job.shadow_target))
        if loaded is None:
            raise RuntimeError(f"shadow target {job.shadow_target} has no version loaded")
        if job.loop is None:
            raise RuntimeError("shadow job without the event loop that answered it")
        return loaded.submit_from_thread(job.body, job.content_type, job.loop, SHADOW_TIMEOUT_S)

    def _record_shadow(self, job: ShadowJob, outcome: str) -> None:
        self.metrics.shadow.labels(job.model, job.primary_target, job.shadow_target, outcome).inc()

    # --- observers --------------------------------------------------------------------

    def _on_swap(self, model: str, target: Target, result: str, seconds: float) -> None:
        self.metrics.swaps.labels(model, target.text, result).inc()
        if result in ("success", "unloaded"):
            heap.settle()  # the loaded set changed: one full GC now, none under load
        asked_at = self._refresh_asked_at
        if result == "success" and asked_at is not None:
            self._refresh_asked_at = None
            waited = time.monotonic() - asked_at
            if waited < 60:  # a swap long after the webhook was not caused by it
                self.metrics.webhook_to_serving.observe(waited)
        if result == "success" and seconds > 0:
            self.metrics.load_duration.labels(model).observe(seconds)

    def _on_target(self, model: str, target: Target, loaded: LoadedVersion | None) -> None:
        self._publish_readiness()
        self._refresh_weights(model)
        self.metrics.loaded_version.labels(model, target.text).set(
            loaded.ref.version if loaded else 0
        )
        self.metrics.target_ready.labels(model, target.text).set(1 if loaded else 0)

    def _on_stale(self, model: str, target: Target, reason: str | None) -> None:
        self.metrics.target_stale.labels(model, target.text).set(0 if reason is None else 1)

    def _publish_process_stats(self) -> None:
        stats = read_process_stats()
        self.metrics.process_memory.set(stats.resident_memory_bytes)
        self.metrics.process_cpu.set(stats.cpu_seconds)
        self.metrics.process_fds.set(stats.open_fds)

    def _on_poll(self, result: PollResult) -> None:
        self._publish_process_stats()
        # Housekeeping a killed worker cannot do for itself, and a marker lost (a wiped
        # runtime folder) comes back within a poll.
        try:
            self._publish_readiness()
            self.metric_files.sweep()
            if self.nudge is not None:
                self.nudge.sweep()
        except OSError as exc:  # e.g. a runtime folder made unwritable
            log.warning("worker housekeeping failed: %s", exc)
        self.metrics.registry_polls.labels("success" if result.ok else "error").inc()
        self.metrics.registry_up.set(1 if result.ok else 0)
        self.metrics.registry_consecutive_failures.set(self.watcher.status.consecutive_failures)
        if result.ok:
            self.metrics.registry_last_success.set(time.time())

    # --- state view -------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """What /admin/models shows: per model, per target, what serves and why."""
        models: dict[str, Any] = {}
        loading = self.pool.loading
        for slot in self.pool.slots():
            failure = self.pool.failure(slot.desired)
            current = slot.current
            entry = {
                "target": slot.target.text,
                "required": slot.required,
                "status": slot.status(failure, loading),
                "version": current.ref.version if current else None,
                "run_id": current.ref.run_id if current else None,
                "source": current.ref.source if current else None,
                "loaded_at": _iso(current.loaded_at) if current else None,
                "load_duration_s": round(current.load_duration_s, 3) if current else None,
                "smoke_tested": current.smoke_tested if current else None,
                "registry_version": slot.desired.version if slot.desired else None,
                "registry_note": slot.note,
                "stale_reason": slot.stale_reason,
                "last_error": failure.error if failure else None,
                "last_error_stage": failure.stage if failure else None,
                "last_error_at": _iso(failure.at) if failure else None,
                "failed_attempts": failure.attempts if failure else 0,
            }
            models.setdefault(slot.model, {"name": slot.model, "targets": []})["targets"].append(
                entry
            )
        for name, entry in models.items():
            entry["traffic"] = self.traffic_view(name)
        status = self.watcher.status
        watcher = status.as_dict()
        watcher["last_success_at"] = _iso(status.last_success_at)
        watcher["last_attempt_at"] = _iso(status.last_attempt_at)
        view = {
            "worker": {"pid": os.getpid(), "started_at": _iso(self.started_at)},
            "ready": self.is_ready(),
            "unready_reasons": self.unready_reasons(),
            "models": list(models.values()),
            "watcher": watcher,
        }
        # Load errors and sources quote artifact and registry URLs: no credentials out.
        return redact_tree(view)
