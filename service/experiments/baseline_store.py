"""Experiment baselines in the runtime folder, shared by every worker of a gateway and
kept across its restarts: one small file per model (``experiment-<hash>.json``).

A baseline is taken under an exclusive lock on the model's lock file, so when several
workers apply a new policy at once the first one writes it and the others find it; it
is written to a scratch file and renamed, so a reader never sees half of one. What a
baseline is and when one is kept: service/experiments/baselines.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator

from service.experiments.baselines import Baseline, baseline_from_text, current_baseline
from service.experiments.window import Sample

PREFIX = "experiment-"

log = logging.getLogger("stageserve.experiments")


class BaselineStore:
    def __init__(self, directory: str, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self._clock = clock

    def get(self, model: str, policy: str) -> Baseline | None:
        """The baseline of the model's policy in force, if one was taken."""
        return current_baseline(self._read(model), model, policy)

    def record(self, model: str, policy: str, take: Callable[[], Iterable[Sample]]) -> Baseline:
        """The baseline of ``policy``: the stored one if it is that policy's (first writer
        wins), else a new one of the samples ``take`` reads now."""
        with self._locked(model):
            stored = self.get(model, policy)
            if stored is not None:
                return stored
            baseline = Baseline(model, policy, self._clock(), tuple(take()))
            path = self._path(model)
            scratch = f"{path}.{os.getpid()}.tmp"
            with open(scratch, "w") as fh:
                fh.write(baseline.to_text())
            os.replace(scratch, path)
            return baseline

    def _read(self, model: str) -> Baseline | None:
        try:
            with open(self._path(model)) as fh:
                return baseline_from_text(fh.read())
        except FileNotFoundError:
            return None
        except OSError as exc:  # an unreadable runtime folder: no baseline, said once here
            log.warning("%s: could not read the experiment's baseline: %s", model, exc)
            return None

    def _path(self, model: str) -> str:
        digest = hashlib.sha256(model.encode()).hexdigest()[:16]  # any model name, a safe file
        return os.path.join(self.directory, f"{PREFIX}{digest}.json")

    @contextlib.contextmanager
    def _locked(self, model: str) -> Iterator[None]:
        os.makedirs(self.directory, exist_ok=True)
        with open(f"{self._path(model)}.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
