"""The controller: each tick, for each model with a rollout (or a bandit), reconcile the
registry with the stored rollout, judge the current step, and write the next move.

``tick(model)``: read the model's tags; take or renew the lease (exactly one controller
decides per model: service/rollouts/controller_lease.py); apply the stored state's
effects (service/rollouts/registry_effects.py: policy, promotion, decision tags; only
what differs); judge the step from a ``ResultsSource`` whose window starts at the step's
policy; compute ``next_move``; write it keyed (service/rollouts/rollout_store.py); and
only when it was WRITTEN apply the new state's effects. A restarted controller (a new
object) resumes from the stored step, since nothing it needs lives in memory: what it
keeps (which states' effects it has applied, which decisions it has counted) only saves
registry calls and double counts.

A tick never raises: a registry (or any) error is logged once per distinct message,
redacted, and counted (``stageserve_controller_ticks_total{result="error"}``); the next
tick tries again. Time comes from the injected ``clock``; nothing here sleeps.

Bandits: ``bandit(model, tags)`` (optional) is called, under the lease, for a model
whose tags hold ``stageserve.bandit`` and that has no live rollout (a live rollout owns
the traffic policy).
"""

from __future__ import annotations

import enum
import logging
import math
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from registry_watcher.redact import redact
from registry_watcher.traffic_policy import POLICY_TAG
from service.rollouts.bandit_config import BANDIT_TAG
from service.rollouts.controller_lease import ControllerLease, new_holder_id
from service.rollouts.gates import GateVerdict
from service.rollouts.progression import judge, next_move, policy_for
from service.rollouts.registry_effects import RegistryEffects, RolloutRegistry
from service.rollouts.results_source import ResultsSource, Unmeasured
from service.rollouts.rollout_plan import Phase, Rollout
from service.rollouts.rollout_store import RolloutStore, Written, rollout_key
from service.rollouts.rollout_tag import ROLLOUT_TAG, decode_rollout

if TYPE_CHECKING:
    from service.ops.metrics import RolloutMetrics

log = logging.getLogger("stageserve.controller")

DEFAULT_LEASE_TICKS = 3  # the lease lasts this many intervals
GATE_FIGURES = (
    "error_rate_increase",
    "shadow_error_rate_increase",
    "p99_ratio",
    "reward_difference",
    "shadow_agreement",
)
BanditActor = Callable[[str, Mapping[str, str]], None]


class TickResult(enum.StrEnum):
    OK = "ok"
    ERROR = "error"
    NOT_LEADER = "not_leader"
    IDLE = "idle"  # nothing to do for this model (not counted)


def controller_name() -> str:
    """Who decides, as the rollout history records it."""
    return f"controller@{socket.gethostname()}:{os.getpid()}"


class Controller:
    def __init__(
        self,
        registry: RolloutRegistry,
        results: ResultsSource,
        models: Callable[[], Iterable[str]],
        *,
        interval_s: float,
        clock: Callable[[], float] = time.time,
        holder: str | None = None,
        name: str | None = None,
        bandit: BanditActor | None = None,
        metrics: RolloutMetrics | None = None,
        after_write: Callable[[], None] = lambda: None,
    ) -> None:
        self.registry = registry
        self.results = results
        self.models = models
        self.interval_s = interval_s
        self.clock = clock
        self.name = name or controller_name()
        self.lease = ControllerLease(
            registry, holder or new_holder_id(), DEFAULT_LEASE_TICKS * interval_s
        )
        self.store = RolloutStore(registry)
        self.effects = RegistryEffects(registry, after_write)
        self.bandit = bandit
        self.metrics = metrics
        self._applied: dict[str, tuple[str, int]] = {}  # model -> (plan, revision) applied
        self._seen: dict[str, tuple[str, int]] = {}  # model -> (plan, revision) counted
        self._errors: dict[str, str] = {}  # model -> the error last logged
        self._held: set[str] = set()  # models whose lease this controller last held

    def run_once(self) -> dict[str, TickResult]:
        """One tick of every model (errors included: never raises)."""
        try:
            models = list(self.models())
        except Exception as exc:  # the registry's model list: try again next tick
            self._failed("(models)", exc)
            if self.metrics is not None:
                self.metrics.controller_ticks.labels(TickResult.ERROR.value).inc()
            return {}
        results = {model: self.tick(model) for model in models}
        idle = all(result is TickResult.IDLE for result in results.values())
        if idle and self.metrics is not None:  # alive with nothing to decide: a good tick
            self.metrics.controller_ticks.labels(TickResult.OK.value).inc()
        return results

    def tick(self, model: str) -> TickResult:
        try:
            result = self._tick(model)
        except Exception as exc:  # registry, Prometheus, a bad tag: never into the loop
            self._failed(model, exc)
            result = TickResult.ERROR
        else:
            if self._errors.pop(model, None) is not None:
                log.info("%s: the controller works again", model)
        if result is not TickResult.IDLE and self.metrics is not None:
            self.metrics.controller_ticks.labels(result.value).inc()
        return result

    def release(self) -> None:
        """Give up every lease this controller holds (a clean stop): another controller
        takes over at its next tick instead of after the lease's expiry."""
        for model in sorted(self._held):
            try:
                self.lease.release(model)
            except Exception as exc:  # stopping anyway: the lease expires by itself
                self._failed(model, exc)
        self._held.clear()

    # --- one model ----------------------------------------------------------------

    def _tick(self, model: str) -> TickResult:
        tags = self.registry.model_tags(model)
        text = tags.get(ROLLOUT_TAG)
        rollout = None if text is None else decode_rollout(text)
        live = rollout is not None and not rollout.state.finished
        unsettled = rollout is not None and self._applied.get(model) != rollout_key(rollout)
        bandit = self.bandit is not None and BANDIT_TAG in tags and not live
        if rollout is not None:
            self._observe(model, rollout)
        if not (live or unsettled or bandit):
            self._held.discard(model)
            return TickResult.IDLE
        if not self.lease.claim(model, tags, self.clock()):
            self._held.discard(model)
            return TickResult.NOT_LEADER
        self._held.add(model)
        if rollout is not None and (live or unsettled):
            self._rollout(model, rollout, tags.get(POLICY_TAG))
        if bandit and self.bandit is not None:
            self.bandit(model, tags)
        return TickResult.OK

    def _rollout(self, model: str, rollout: Rollout, policy_text: str | None) -> None:
        plan, state = rollout.plan, rollout.state
        if state.finished:
            if not self.effects.settled(rollout):
                self.effects.apply(rollout, policy_text)
            self._applied[model] = rollout_key(rollout)
            return
        if self._applied.get(model) != rollout_key(rollout):
            policy_text = self.effects.apply(rollout, policy_text)
            self._applied[model] = rollout_key(rollout)
        else:  # level-triggered: a policy changed by hand mid-rollout is put back
            policy_text = self.effects.apply_policy(rollout, policy_text)
        measured = self.results.result(model, policy_for(plan, state), state.step_started_at)
        if isinstance(measured, Unmeasured):
            log.debug("%s: holding: %s", model, measured.reason)
            return
        verdict = judge(plan, state, measured)
        self._gauge_figures(model, verdict)
        move = next_move(plan, state, verdict, self.clock(), self.name)
        if not move.writes:
            log.debug("%s: holding: %s", model, move.reason)
            return
        written = self.store.write(model, move)
        if written is not Written.WRITTEN:
            log.info(
                "%s: %s not applied (%s): another writer moved first", model, move.kind, written
            )
            return
        log.info("%s: %s: %s", model, move.kind, move.reason)
        moved = Rollout(plan, move.state)
        self.effects.apply(moved, policy_text)
        self._applied[model] = rollout_key(moved)
        self._observe(model, moved)

    # --- what it shows ------------------------------------------------------------

    def _observe(self, model: str, rollout: Rollout) -> None:
        """Count the decisions new since the last look; set the step and phase gauges."""
        key = rollout_key(rollout)
        seen = self._seen.get(model)
        self._seen[model] = key
        if self.metrics is None:
            return
        if seen is not None and seen != key:
            since = seen[1] if seen[0] == key[0] else 0
            for decision in rollout.state.history:
                if decision.revision > since:
                    self.metrics.rollout_decisions.labels(model, decision.move.value).inc()
        state = rollout.state
        step = 0 if state.phase is Phase.SHADOW else state.step + 1
        self.metrics.rollout_step.labels(model).set(step)
        for phase in Phase:
            self.metrics.rollout_phase.labels(model, phase.value).set(
                1 if phase is state.phase else 0
            )

    def _gauge_figures(self, model: str, verdict: GateVerdict) -> None:
        if self.metrics is None:
            return
        for gate in GATE_FIGURES:
            value = verdict.figures.get(gate)
            if isinstance(value, int | float) and math.isfinite(value):
                self.metrics.rollout_gate_value.labels(model, gate).set(value)

    def _failed(self, model: str, exc: Exception) -> None:
        """Log an error once per distinct message (redacted), until the model recovers."""
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        message = redact(f"{type(exc).__name__}: {first_line}")
        if self._errors.get(model) != message:
            self._errors[model] = message
            log.warning("%s: controller tick failed: %s (retrying every tick)", model, message)
