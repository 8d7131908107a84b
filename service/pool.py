"""The model pool: brings loaded versions in line with the desired state, safely.

TensorFlow Serving's manager, in small: the watcher says which version each target
should serve (the aspired versions); the pool loads it beside the current one,
smoke-tests it, switches the target to it in one assignment, and drops its own
reference to the old one. Requests that already hold the old version finish on it.
A version that fails stays out of traffic, the old one keeps serving, and the load
is retried with backoff. A version in several targets (``Production`` and
``@champion``) is loaded once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from registry_watcher.backoff import backoff_delay
from registry_watcher.state import DesiredState, VersionRef
from registry_watcher.targets import Target
from service.loader import LoadedVersion, LoadError

log = logging.getLogger("stageserve.pool")

Loader = Callable[[VersionRef], LoadedVersion]


@dataclass
class Failure:
    """Why a version did not load, and when to try again."""

    attempts: int
    error: str
    stage: str
    at: float
    retry_at: float  # monotonic


@dataclass
class Slot:
    """One target of one model: what it serves now and what it should serve."""

    model: str
    target: Target
    required: bool
    current: LoadedVersion | None = None
    desired: VersionRef | None = None
    desired_known: bool = False  # False until the registry has been read once
    note: str | None = None  # why the target resolves to nothing, from the watcher

    def status(self, failure: Failure | None, loading: VersionRef | None) -> str:
        if self.desired is None:
            return "empty" if self.desired_known else "waiting_for_registry"
        if self.current is not None and self.current.ref == self.desired:
            return "ready"
        if loading == self.desired:
            return "loading"
        if failure is not None:
            return "failed"
        return "pending"


@dataclass
class PoolObserver:
    """Hooks for metrics; each gets plain values. Defaults do nothing."""

    on_swap: Callable[[str, Target, str, float], None] = lambda model, target, result, secs: None
    on_target: Callable[[str, Target, LoadedVersion | None], None] = lambda m, t, v: None


@dataclass
class _Job:
    ref: VersionRef
    slots: list[Slot] = field(default_factory=list)


class ModelPool:
    def __init__(
        self,
        targets: Mapping[str, tuple[Target, ...]],
        loader: Loader,
        required: Callable[[str, Target], bool],
        retry_base_s: float = 1.0,
        retry_cap_s: float = 60.0,
        observer: PoolObserver | None = None,
    ) -> None:
        self._loader = loader
        self._retry_base_s = retry_base_s
        self._retry_cap_s = retry_cap_s
        self._observer = observer or PoolObserver()
        self._slots: dict[tuple[str, Target], Slot] = {
            (model, target): Slot(model, target, required(model, target))
            for model, model_targets in targets.items()
            for target in model_targets
        }
        self._targets = {model: tuple(ts) for model, ts in targets.items()}
        self._failures: dict[VersionRef, Failure] = {}
        self._loading: VersionRef | None = None
        self._lock = threading.Lock()  # guards desired/current bookkeeping, never held to load
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- request path: lock-free reads -----------------------------------------------

    def get(self, model: str, target: Target) -> LoadedVersion | None:
        slot = self._slots.get((model, target))
        return None if slot is None else slot.current

    def targets(self, model: str) -> tuple[Target, ...]:
        return self._targets.get(model, ())

    def models(self) -> tuple[str, ...]:
        return tuple(self._targets)

    def slots(self) -> Iterable[Slot]:
        return self._slots.values()

    def failure(self, ref: VersionRef | None) -> Failure | None:
        return None if ref is None else self._failures.get(ref)

    @property
    def loading(self) -> VersionRef | None:
        return self._loading

    def is_ready(self) -> bool:
        """Every required target serves a version. A swap never clears `current`."""
        return all(s.current is not None for s in self._slots.values() if s.required)

    def unready_reasons(self) -> list[str]:
        reasons = []
        for slot in self._slots.values():
            if slot.required and slot.current is None:
                failure = self.failure(slot.desired)
                if failure is not None:
                    why = f"version {slot.desired.version} failed to load: {failure.error}"
                elif slot.desired is not None:
                    why = f"version {slot.desired.version} is loading"
                elif not slot.desired_known:
                    why = "the registry has not been read yet"
                else:
                    why = slot.note or "no version in the registry"
                reasons.append(f"{slot.model} {slot.target.text}: {why}")
        return reasons

    # --- desired state in -------------------------------------------------------------

    def apply(self, state: DesiredState) -> None:
        """Take a new desired state (from the watcher). Unloads happen at once; loads
        happen on the pool's thread."""
        emptied: list[Slot] = []
        with self._lock:
            for (model, target), slot in self._slots.items():
                model_state = state.models.get(model)
                slot.desired = state.version_for(model, target)
                slot.desired_known = True
                slot.note = model_state.notes.get(target) if model_state else None
                if slot.desired is None and slot.current is not None:
                    emptied.append(slot)
            for slot in emptied:
                was = slot.current.ref.version if slot.current else "?"
                slot.current = None
                log.info(
                    "%s %s: version %s left the target; it takes no more traffic",
                    slot.model,
                    slot.target.text,
                    was,
                )
            wanted = {s.desired for s in self._slots.values() if s.desired is not None}
            for ref in list(self._failures):
                if ref not in wanted:
                    del self._failures[ref]
        for slot in emptied:
            self._observer.on_swap(slot.model, slot.target, "unloaded", 0.0)
            self._observer.on_target(slot.model, slot.target, None)
        self._wake.set()

    # --- reconciliation ---------------------------------------------------------------

    def _next_job(self, now: float) -> tuple[_Job | None, float | None]:
        """The next version to load, or the time until a retry is due."""
        jobs: dict[VersionRef, _Job] = {}
        soonest: float | None = None
        with self._lock:
            for slot in self._slots.values():
                ref = slot.desired
                if ref is None or (slot.current is not None and slot.current.ref == ref):
                    continue
                failure = self._failures.get(ref)
                if failure is not None and failure.retry_at > now:
                    wait = failure.retry_at - now
                    soonest = wait if soonest is None else min(soonest, wait)
                    continue
                jobs.setdefault(ref, _Job(ref)).slots.append(slot)
        if not jobs:
            return None, soonest
        # Required targets first, so readiness comes as early as possible.
        job = min(jobs.values(), key=lambda j: (not any(s.required for s in j.slots), j.ref.model))
        return job, soonest

    def _already_loaded(self, ref: VersionRef) -> LoadedVersion | None:
        for slot in self._slots.values():
            if slot.current is not None and slot.current.ref == ref:
                return slot.current
        return None

    def reconcile_once(self) -> float | None:
        """Load one pending version if any; returns seconds until more work is due
        (0 for now, None for nothing scheduled)."""
        job, soonest = self._next_job(time.monotonic())
        if job is None:
            return soonest
        ref = job.ref
        loaded = self._already_loaded(ref)
        started = time.monotonic()
        if loaded is None:
            self._loading = ref
            try:
                loaded = self._loader(ref)
            except Exception as exc:
                self._record_failure(job, exc, time.monotonic() - started)
                return 0.0
            finally:
                self._loading = None
        duration = time.monotonic() - started
        self._switch(job, loaded, duration)
        return 0.0

    def _record_failure(self, job: _Job, exc: Exception, duration: float) -> None:
        stage = exc.stage if isinstance(exc, LoadError) else "load"
        message = str(exc) if isinstance(exc, LoadError) else f"{type(exc).__name__}: {exc}"
        with self._lock:
            if not any(s.desired == job.ref for s in self._slots.values()):
                return  # the registry moved on during the load: nothing to retry
            previous = self._failures.get(job.ref)
            attempts = (previous.attempts if previous else 0) + 1
            delay = backoff_delay(attempts, self._retry_base_s, self._retry_cap_s)
            self._failures[job.ref] = Failure(
                attempts=attempts,
                error=message[:1000],
                stage=stage,
                at=time.time(),
                retry_at=time.monotonic() + delay,
            )
        for slot in job.slots:
            serving = slot.current.ref.version if slot.current else None
            log.error(
                "%s %s: version %s failed (%s, attempt %d, retry in %.1fs); still serving %s: %s",
                slot.model,
                slot.target.text,
                job.ref.version,
                stage,
                attempts,
                delay,
                serving if serving is not None else "nothing",
                message,
            )
            self._observer.on_swap(slot.model, slot.target, f"{stage}_failed", duration)

    def _switch(self, job: _Job, loaded: LoadedVersion, duration: float) -> None:
        switched: list[Slot] = []
        with self._lock:
            self._failures.pop(job.ref, None)
            for slot in job.slots:
                if slot.desired != loaded.ref:  # the registry moved on while we loaded
                    continue
                # No reference to the old version is kept here: it is freed as soon as
                # its in-flight requests end.
                was = slot.current.ref.version if slot.current else "nothing"
                slot.current = loaded  # the swap: one reference assignment
                switched.append(slot)
                log.info(
                    "%s %s: now serving version %s (was %s)",
                    slot.model,
                    slot.target.text,
                    loaded.ref.version,
                    was,
                )
        for slot in switched:
            self._observer.on_swap(slot.model, slot.target, "success", duration)
            self._observer.on_target(slot.model, slot.target, loaded)

    def run_until_idle(self, timeout: float = 60.0) -> None:
        """Reconcile until nothing is due now (tests and start-up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            due = self.reconcile_once()
            if due is None or due > 0:
                return

    # --- thread -----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="model-pool", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                due = self.reconcile_once()
            except Exception:  # never let the pool thread die
                log.exception("model pool reconcile failed")
                due = self._retry_base_s
            if due == 0.0:
                continue
            self._wake.wait(due)
            self._wake.clear()
