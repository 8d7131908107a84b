"""The model pool: brings loaded versions in line with the desired state, safely.

TensorFlow Serving's manager, in small: the watcher says which version each target
should serve (the aspired versions); the pool loads it beside the current one,
smoke-tests it, switches the target to it in one assignment, and drops its own
reference to the old one. Requests that already hold the old version finish on it.
A version that fails stays out of traffic, the old one keeps serving, and the load
is retried with backoff. A version in several targets (``Production`` and
``@champion``) is loaded once.

Loads run on their own threads: one at a time per model (so one model's versions never
race each other), several models at once (up to ``max_concurrent_loads``), so a slow
or hung download of one model never holds up another model's swaps. Each load has a
deadline: past it the attempt is abandoned (recorded as a ``load_timeout`` failure and
retried with backoff once it ends) and whatever it returns later is thrown away.

The pool is the mechanism; the choices are policy objects passed in, as TF Serving
keeps its policies next to its manager: what happens to a target the registry empties
(``availability.py``: fail static by default), which pending version loads first
(``load_order.py``), and how long a failed load waits before its retry (``backoff.py``).
It knows a loaded version only as a ``Servable`` (``servable.py``): importing it pulls in
nothing of the request path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic

from registry_watcher.background import BackgroundLoop
from registry_watcher.state import DesiredState, VersionRef
from registry_watcher.targets import Target
from service.lifecycle.availability import (
    DEFAULT_STALE_REASON,
    AvailabilityPolicy,
    EmptiedVerdict,
    FailStatic,
)
from service.lifecycle.backoff import ExponentialBackoff, RetryPolicy
from service.lifecycle.load_order import LoadOrder, RequiredFirst
from service.lifecycle.servable import Loader, LoadError, S

log = logging.getLogger("stageserve.pool")

# Runs a load: by default on a new daemon thread; tests may run it inline.
Spawner = Callable[[Callable[[], None], str], None]

LOAD_TIMEOUT_STAGE = "load_timeout"


def spawn_thread(work: Callable[[], None], name: str) -> None:
    threading.Thread(target=work, name=name, daemon=True).start()


@dataclass
class Failure:
    """Why a version did not load, and when to try again."""

    attempts: int
    error: str
    stage: str
    at: float
    retry_at: float  # monotonic


@dataclass
class Slot(Generic[S]):
    """One target of one model: what it serves now and what it should serve."""

    model: str
    target: Target
    required: bool
    current: S | None = None
    desired: VersionRef | None = None
    desired_known: bool = False  # False until the registry has been read once
    note: str | None = None  # why the target resolves to nothing, from the watcher

    @property
    def stale(self) -> bool:
        """Serving a version the registry no longer names for this target (fail static)."""
        return self.desired_known and self.desired is None and self.current is not None

    @property
    def stale_reason(self) -> str | None:
        return (self.note or DEFAULT_STALE_REASON) if self.stale else None

    def status(self, failure: Failure | None, loading: Collection[VersionRef] = ()) -> str:
        if self.desired is None:
            if self.stale:
                return "stale"
            return "empty" if self.desired_known else "waiting_for_registry"
        if self.current is not None and self.current.ref == self.desired:
            return "ready"
        if self.desired in loading:
            return "loading"
        if failure is not None:
            return "failed"
        return "pending"


@dataclass
class PoolObserver(Generic[S]):
    """Hooks for metrics; each gets plain values. Defaults do nothing."""

    on_swap: Callable[[str, Target, str, float], None] = lambda model, target, result, secs: None
    on_target: Callable[[str, Target, S | None], None] = lambda m, t, v: None
    # (model, target, reason) when a target turns stale, reason None when it stops being.
    on_stale: Callable[[str, Target, str | None], None] = lambda m, t, reason: None


@dataclass
class _Load:
    """One load attempt in flight. ``abandoned`` once past its deadline: its thread may
    still run, but its result is thrown away."""

    ref: VersionRef
    started: float  # monotonic
    deadline: float  # monotonic
    abandoned: bool = False


@dataclass
class _Job(Generic[S]):
    """A version some targets wait for (a ``load_order.Wanted``)."""

    ref: VersionRef
    slots: list[Slot[S]] = field(default_factory=list)

    @property
    def required(self) -> bool:
        return any(s.required for s in self.slots)


class ModelPool(Generic[S]):
    def __init__(
        self,
        targets: Mapping[str, tuple[Target, ...]],
        loader: Loader[S],
        required: Callable[[str, Target], bool],
        observer: PoolObserver[S] | None = None,
        availability: AvailabilityPolicy | None = None,
        retry: RetryPolicy | None = None,
        load_order: LoadOrder | None = None,
        load_timeout_s: float = 600.0,
        max_concurrent_loads: int = 2,
        spawn: Spawner = spawn_thread,
    ) -> None:
        self._loader = loader
        self._observer: PoolObserver[S] = observer or PoolObserver()
        self._availability = availability or FailStatic()
        self._retry = retry or ExponentialBackoff()
        self._load_order = load_order or RequiredFirst()
        self._load_timeout_s = load_timeout_s
        self._max_concurrent_loads = max(1, max_concurrent_loads)
        self._spawn = spawn
        self._slots: dict[tuple[str, Target], Slot[S]] = {
            (model, target): Slot(model, target, required(model, target))
            for model, model_targets in targets.items()
            for target in model_targets
        }
        self._targets = {model: tuple(ts) for model, ts in targets.items()}
        self._failures: dict[VersionRef, Failure] = {}
        # Every attempt whose thread has not returned, abandoned or not: at most one
        # per version, so a version that hangs holds at most one thread.
        self._loads: dict[VersionRef, _Load] = {}
        self._lock = threading.Lock()  # guards desired/current bookkeeping, never held to load
        self._loop = BackgroundLoop("model-pool", self.reconcile_once, self._reconcile_failed)

    # --- request path: lock-free reads -----------------------------------------------

    def get(self, model: str, target: Target) -> S | None:
        slot = self._slots.get((model, target))
        return None if slot is None else slot.current

    def targets(self, model: str) -> tuple[Target, ...]:
        return self._targets.get(model, ())

    def models(self) -> tuple[str, ...]:
        return tuple(self._targets)

    def slots(self) -> Iterable[Slot[S]]:
        return self._slots.values()

    def failure(self, ref: VersionRef | None) -> Failure | None:
        return None if ref is None else self._failures.get(ref)

    @property
    def loading(self) -> frozenset[VersionRef]:
        """Versions being loaded now (attempts past their deadline are not)."""
        return frozenset(ref for ref, load in list(self._loads.items()) if not load.abandoned)

    def is_ready(self) -> bool:
        """Every required target serves a version. A swap never clears `current`."""
        return all(s.current is not None for s in self._slots.values() if s.required)

    def unready_reasons(self) -> list[str]:
        reasons = []
        for slot in self._slots.values():
            if slot.required and slot.current is None:
                failure = self.failure(slot.desired)
                if slot.desired is not None and failure is not None:
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
        """Take a new desired state (from the watcher). Emptied targets are settled at
        once, by the availability policy; loads happen on load threads."""
        emptied: list[Slot[S]] = []
        stale_changes: list[tuple[Slot[S], str | None]] = []
        with self._lock:
            for (model, target), slot in self._slots.items():
                was_stale = slot.stale_reason
                model_state = state.models.get(model)
                slot.desired = state.version_for(model, target)
                slot.desired_known = True
                slot.note = model_state.notes.get(target) if model_state else None
                if (
                    slot.desired is None
                    and slot.current is not None
                    and self._availability.on_emptied(slot.required) is EmptiedVerdict.UNLOAD
                ):
                    emptied.append(slot)
                elif slot.stale_reason != was_stale:
                    stale_changes.append((slot, slot.stale_reason))
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
        for slot, reason in stale_changes:
            serving = slot.current.ref.version if slot.current else None
            if reason is not None:
                log.warning(
                    "%s %s: %s; still serving version %s (fail static: it stays until the "
                    "registry names a version again, or set --on-empty unload)",
                    slot.model,
                    slot.target.text,
                    reason,
                    serving,
                )
            else:
                log.info(
                    "%s %s: the registry names version %s again; no longer stale",
                    slot.model,
                    slot.target.text,
                    slot.desired.version if slot.desired else "?",
                )
            self._observer.on_stale(slot.model, slot.target, reason)
        for slot in emptied:
            self._observer.on_swap(slot.model, slot.target, "unloaded", 0.0)
            self._observer.on_target(slot.model, slot.target, None)
        self._loop.wake()

    # --- reconciliation ---------------------------------------------------------------

    def _expire_overdue(self, now: float) -> None:
        """Abandon the loads past their deadline: a timeout failure, retried later."""
        overdue: list[_Load] = []
        with self._lock:
            for load in self._loads.values():
                if not load.abandoned and load.deadline <= now:
                    load.abandoned = True
                    overdue.append(load)
        for load in overdue:
            error = LoadError(
                LOAD_TIMEOUT_STAGE,
                f"loading {load.ref.uri} did not finish within {self._load_timeout_s:g}s "
                "(STAGESERVE_LOAD_TIMEOUT); the attempt was abandoned",
            )
            self._record_failure(load.ref, error, now - load.started)

    def _take_job(self, now: float) -> tuple[_Job[S] | None, S | None, float | None]:
        """The next version to switch to: one another target already serves (returned
        with it), or one to load now (registered as in flight); and the time until a
        retry or a deadline is due."""
        jobs: dict[VersionRef, _Job[S]] = {}
        soonest: float | None = None

        def due_in(wait: float) -> None:
            nonlocal soonest
            soonest = wait if soonest is None else min(soonest, wait)

        with self._lock:
            live = [load for load in self._loads.values() if not load.abandoned]
            for load in live:
                due_in(max(0.0, load.deadline - now))
            busy_models = {load.ref.model for load in live}
            for slot in self._slots.values():
                ref = slot.desired
                if ref is None or (slot.current is not None and slot.current.ref == ref):
                    continue
                if ref in self._loads:
                    continue  # in flight, or abandoned and not returned yet
                failure = self._failures.get(ref)
                if failure is not None and failure.retry_at > now:
                    due_in(failure.retry_at - now)
                    continue
                jobs.setdefault(ref, _Job(ref)).slots.append(slot)
            if not jobs:
                return None, None, soonest
            ordered = self._load_order.order(jobs.values())
            for job in ordered:
                loaded = self._already_loaded(job.ref)
                if loaded is not None:
                    return job, loaded, soonest  # no load needed: switch at once
            if len(live) >= self._max_concurrent_loads:
                return None, None, soonest
            for job in ordered:
                if job.ref.model in busy_models:
                    continue  # one load per model at a time
                self._loads[job.ref] = _Load(
                    job.ref,
                    started=now,
                    deadline=now + self._load_timeout_s,
                )
                return job, None, soonest
        return None, None, soonest

    def _already_loaded(self, ref: VersionRef) -> S | None:
        for slot in self._slots.values():
            if slot.current is not None and slot.current.ref == ref:
                return slot.current
        return None

    def reconcile_once(self) -> float | None:
        """Start (or, if already loaded elsewhere, switch to) one pending version;
        abandon overdue loads. Returns seconds until more work is due (0 for now, None
        for nothing scheduled); finished loads wake the pool's thread."""
        now = time.monotonic()
        self._expire_overdue(now)
        job, loaded, soonest = self._take_job(now)
        if job is None:
            return soonest
        if loaded is not None:
            self._switch(loaded, 0.0)
            return 0.0
        ref = job.ref
        self._spawn(lambda: self._load(ref), f"load-{ref.model}-v{ref.version}")
        return 0.0

    def _load(self, ref: VersionRef) -> None:
        """Body of a load thread: load, then hand the result back under the lock."""
        started = time.monotonic()
        loaded: S | None = None
        error: Exception | None = None
        try:
            loaded = self._loader(ref)
        except Exception as exc:
            error = exc
        duration = time.monotonic() - started
        with self._lock:
            load = self._loads.pop(ref, None)
        if load is None or load.abandoned:
            # Past its deadline: the timeout is already recorded. Dropping the only
            # reference frees the version and, through its finalizer, its folder.
            log.warning(
                "%s version %s: an abandoned load ended after %.1fs (%s); discarded",
                ref.model,
                ref.version,
                duration,
                "loaded" if loaded is not None else f"failed: {error}",
            )
            loaded = None
        elif error is not None:
            self._record_failure(ref, error, duration)
        elif loaded is not None:
            self._switch(loaded, duration)
        self._loop.wake()

    def _record_failure(self, ref: VersionRef, exc: Exception, duration: float) -> None:
        stage = exc.stage if isinstance(exc, LoadError) else "load"
        message = str(exc) if isinstance(exc, LoadError) else f"{type(exc).__name__}: {exc}"
        with self._lock:
            slots = [s for s in self._slots.values() if s.desired == ref]
            if not slots:
                return  # the registry moved on during the load: nothing to retry
            previous = self._failures.get(ref)
            attempts = (previous.attempts if previous else 0) + 1
            delay = self._retry.delay(attempts)
            self._failures[ref] = Failure(
                attempts=attempts,
                error=message[:1000],
                stage=stage,
                at=time.time(),
                retry_at=time.monotonic() + delay,
            )
        result = LOAD_TIMEOUT_STAGE if stage == LOAD_TIMEOUT_STAGE else f"{stage}_failed"
        for slot in slots:
            serving = slot.current.ref.version if slot.current else None
            log.error(
                "%s %s: version %s failed (%s, attempt %d, retry in %.1fs); still serving %s: %s",
                slot.model,
                slot.target.text,
                ref.version,
                stage,
                attempts,
                delay,
                serving if serving is not None else "nothing",
                message,
            )
            self._observer.on_swap(slot.model, slot.target, result, duration)

    def _switch(self, loaded: S, duration: float) -> None:
        switched: list[Slot[S]] = []
        with self._lock:
            self._failures.pop(loaded.ref, None)
            for slot in self._slots.values():
                if slot.desired != loaded.ref:  # the registry moved on while we loaded
                    continue
                if slot.current is not None and slot.current.ref == loaded.ref:
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

    # --- thread -----------------------------------------------------------------------

    def start(self) -> None:
        self._loop.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._loop.stop(timeout)

    def _reconcile_failed(self, exc: Exception) -> float:
        """The pool thread never dies: log, and look again after a first retry's wait."""
        log.error("model pool reconcile failed", exc_info=exc)
        return self._retry.delay(1)
