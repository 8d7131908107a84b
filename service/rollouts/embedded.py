"""The embedded controller: ``stageserve serve`` runs the rollout controller in ONE of
its workers, from the gateway's own metrics (``GatewayResults``).

The worker that holds an flock on ``controller.lock`` in the runtime folder (shared by
the gateway's workers, service/cli/runtime_dir.py) runs the ticks on a background
thread; the others try the lock at every interval, so when that worker dies (the
kernel drops its lock) another one takes over at its next try. Across gateways, the
registry lease (service/rollouts/controller_lease.py) still lets only one decide.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Iterable
from typing import IO

from registry_watcher.background import BackgroundLoop
from service.experiments.baseline_store import BaselineStore
from service.experiments.gateway_experiments import GatewayExperiments
from service.ops.metrics import get_rollout_metrics
from service.rollouts.bandit_actor import BanditActor
from service.rollouts.bandit_rewards import GatewayBanditRewards
from service.rollouts.controller import Controller
from service.rollouts.registry_effects import MlflowRolloutRegistry
from service.rollouts.results_source import GatewayResults

log = logging.getLogger("stageserve.controller")

LOCK_FILE = "controller.lock"
BANDIT_BASELINES = "bandit-baselines"  # the bandits' reward baselines, one file per model


class ControllerLock:
    """A non-blocking flock on ``path``, held until ``release`` or the process ends."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def try_acquire(self) -> bool:
        if self._file is not None:
            return True
        handle = open(self.path, "ab")  # noqa: SIM115  # kept open: the lock lives with it
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None


class EmbeddedController:
    """Ticks ``controller`` every ``interval_s`` while this worker holds ``lock``."""

    def __init__(self, controller: Controller, lock: ControllerLock, interval_s: float) -> None:
        self.controller = controller
        self.lock = lock
        self.interval_s = interval_s
        self.loop = BackgroundLoop("rollout-controller", self._step)

    def start(self) -> None:
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()
        if self.lock.held:
            self.controller.release()
            self.lock.release()

    def _step(self) -> float:
        if not self.lock.held:
            if not self.lock.try_acquire():
                return self.interval_s
            log.info("this worker (pid %d) runs the rollout controller", os.getpid())
        self.controller.run_once()
        return self.interval_s


def embedded_controller(
    runtime_dir: str | None,
    registry_uri: str | None,
    timeout_s: float,
    interval_s: float,
    experiments: GatewayExperiments,
    models: Callable[[], Iterable[str]],
    after_write: Callable[[], None] = lambda: None,
) -> EmbeddedController | None:
    """The gateway's embedded controller; None without a runtime folder to elect in.
    ``after_write``: called after each policy write or promotion (read the registry now)."""
    if runtime_dir is None:
        log.warning("no runtime folder: the embedded rollout controller does not run")
        return None
    registry = MlflowRolloutRegistry(registry_uri, timeout_s)
    metrics = get_rollout_metrics()
    rewards = GatewayBanditRewards(
        experiments.samples,
        BaselineStore(os.path.join(runtime_dir, BANDIT_BASELINES)),
        counting_since=experiments.started_at,
    )
    bandit = BanditActor(registry, rewards, weights=metrics.bandit_weight, after_write=after_write)
    controller = Controller(
        registry,
        GatewayResults(experiments),
        models,
        interval_s=interval_s,
        metrics=metrics,
        after_write=after_write,
        bandit=bandit,
    )
    lock = ControllerLock(os.path.join(runtime_dir, LOCK_FILE))
    return EmbeddedController(controller, lock, interval_s)
