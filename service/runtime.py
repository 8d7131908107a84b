"""One worker's gateway: the watcher feeding the pool, the request path, the state view.

BentoML runs one of these per worker process; workers share nothing but the registry.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from registry_watcher.reader import RegistryReader
from registry_watcher.targets import Target
from registry_watcher.watcher import PollResult, Reader, RegistryWatcher
from service import routing
from service.config import Settings
from service.errors import ServingError, bad_request, not_found
from service.loader import LoadedVersion, VersionLoader
from service.metrics import get_metrics
from service.pool import Loader, ModelPool, PoolObserver

log = logging.getLogger("stageserve.runtime")


@dataclass(frozen=True)
class Answer:
    """A prediction response: body plus the headers that say who answered."""

    body: bytes
    model: str
    target: Target
    version: int

    def headers(self) -> dict[str, str]:
        return {
            "X-Model-Name": self.model,
            "X-Model-Version": str(self.version),
            "X-Model-Target": self.target.text,
        }


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class Gateway:
    def __init__(
        self,
        settings: Settings,
        reader: Reader | None = None,
        loader: Loader | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = get_metrics()
        self.started_at = time.time()
        if settings.registry_uri:
            import mlflow

            mlflow.set_tracking_uri(settings.registry_uri)
            mlflow.set_registry_uri(settings.registry_uri)
        targets = settings.targets_by_model()
        self.pool = ModelPool(
            targets,
            loader or VersionLoader(settings.model_dir, settings.smoke_test),
            required=lambda model, target: target == settings.required_target,
            retry_base_s=min(1.0, settings.poll_interval_s),
            retry_cap_s=settings.max_backoff_s,
            observer=PoolObserver(on_swap=self._on_swap, on_target=self._on_target),
        )
        self.watcher = RegistryWatcher(
            reader or RegistryReader(settings.registry_uri),
            targets,
            poll_interval_s=settings.poll_interval_s,
            max_backoff_s=settings.max_backoff_s,
            registry_uri=settings.registry_uri,
            on_poll=self._on_poll,
        )
        self.watcher.subscribe(lambda state, _diff: self.pool.apply(state))
        for model, model_targets in targets.items():
            for target in model_targets:
                self.metrics.loaded_version.labels(model, target.text).set(0)
                self.metrics.target_ready.labels(model, target.text).set(0)
        self.metrics.registry_up.set(0)

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        self.pool.start()
        self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()
        self.pool.stop()

    def is_ready(self) -> bool:
        return self.pool.is_ready()

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

    def invoke(
        self, model: str, override: str | None, body: bytes, content_type: str | None
    ) -> Answer:
        """Answer one prediction request (runs in a worker thread). Records metrics."""
        started = time.perf_counter()
        targets = self.pool.targets(model)
        if not targets:
            served = ", ".join(self.pool.models())
            self.metrics.requests.labels("", "", "", "not_found").inc()
            raise not_found(f"Model {model!r} is not served here. Served models: {served}.")
        label_target, label_version = "", ""
        self.metrics.in_flight.labels(model).inc()
        try:
            route = routing.choose(model, targets, lambda t: self.pool.get(model, t), override)
            loaded: LoadedVersion = route.loaded
            label_target, label_version = route.target.text, str(loaded.ref.version)
            payload = loaded.invoke(body, content_type)
        except ServingError as exc:
            self.metrics.requests.labels(model, label_target, label_version, exc.outcome).inc()
            raise
        finally:
            self.metrics.in_flight.labels(model).dec()
        self.metrics.requests.labels(model, label_target, label_version, "success").inc()
        self.metrics.request_duration.labels(model, label_target, label_version).observe(
            time.perf_counter() - started
        )
        return Answer(payload, model, route.target, loaded.ref.version)

    # --- observers --------------------------------------------------------------------

    def _on_swap(self, model: str, target: Target, result: str, seconds: float) -> None:
        self.metrics.swaps.labels(model, target.text, result).inc()
        if result == "success" and seconds > 0:
            self.metrics.load_duration.labels(model).observe(seconds)

    def _on_target(self, model: str, target: Target, loaded: LoadedVersion | None) -> None:
        self.metrics.loaded_version.labels(model, target.text).set(
            loaded.ref.version if loaded else 0
        )
        self.metrics.target_ready.labels(model, target.text).set(1 if loaded else 0)

    def _on_poll(self, result: PollResult) -> None:
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
                "last_error": failure.error if failure else None,
                "last_error_at": _iso(failure.at) if failure else None,
                "failed_attempts": failure.attempts if failure else 0,
            }
            models.setdefault(slot.model, {"name": slot.model, "targets": []})["targets"].append(
                entry
            )
        status = self.watcher.status
        watcher = status.as_dict()
        watcher["last_success_at"] = _iso(status.last_success_at)
        watcher["last_attempt_at"] = _iso(status.last_attempt_at)
        return {
            "worker": {"pid": os.getpid(), "started_at": _iso(self.started_at)},
            "ready": self.is_ready(),
            "unready_reasons": self.pool.unready_reasons(),
            "models": list(models.values()),
            "watcher": watcher,
        }
