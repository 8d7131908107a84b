"""Shadow requests go through the shadow version's batcher: never two predicts at once.

A real Gateway (pool, policies, mirror; no registry) serves one version under two
targets, Production and Staging, with a 100% shadow on Staging: every primary request
and every shadow copy reach the same LoadedVersion, whose model notices any concurrent
entry into ``predict``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from registry_watcher.state import DesiredState, ModelState, VersionRef
from registry_watcher.targets import parse_target
from registry_watcher.traffic_policy import policy_from_dict
from service.config import Settings
from service.gateway import Gateway
from service.inference.loaded_version import LoadedVersion
from service.traffic.policy_book import ADMIN

PROD = parse_target("Production")
STAGING = parse_target("Staging")
MODEL = "shadow-isolation"


class NotThreadSafeModel:
    """Counts entries into ``predict`` while another call is inside it."""

    def __init__(self) -> None:
        self._inside = threading.Lock()
        self.overlaps = 0
        self.calls = 0

    def predict(self, data: Any) -> list[float]:
        if not self._inside.acquire(blocking=False):
            self.overlaps += 1
            return [1.0] * len(data)
        try:
            self.calls += 1
            time.sleep(0.002)  # the model's work (releases the GIL, as native code does)
            return [1.0] * len(data)
        finally:
            self._inside.release()


class NoRegistry:
    """The watcher is never started: the test applies the desired state itself."""


def shadow_count(outcome: str) -> float:
    labels = {"model": MODEL, "target": "Production", "shadow_target": "Staging"}
    value = REGISTRY.get_sample_value(
        "stageserve_shadow_requests_total", {**labels, "outcome": outcome}
    )
    return value or 0.0


def test_shadow_copies_never_run_beside_the_versions_batcher(tmp_path: Path) -> None:
    model = NotThreadSafeModel()
    ref = VersionRef(MODEL, 1, "s3://bucket/m/1", "run1")

    def loader(r: VersionRef) -> LoadedVersion:
        return LoadedVersion(
            ref=r,
            model=model,
            metadata=None,
            input_schema=None,
            with_params=False,
            local_dir=str(tmp_path),
        )

    settings = Settings(
        registry_uri=None,
        models=(MODEL,),
        targets=(PROD, STAGING),
        poll_interval_s=1.0,
        max_backoff_s=1.0,
        workers=1,
        max_body_bytes=1 << 20,
        smoke_test=False,
        model_dir=str(tmp_path),
        log_level="INFO",
    )
    gateway = Gateway(settings, registry=NoRegistry(), loader=loader)  # type: ignore[arg-type]
    gateway.pool.start()
    gateway.mirror.start()
    try:
        gateway.pool.apply(
            DesiredState({MODEL: ModelState(MODEL, True, {PROD: ref, STAGING: ref})})
        )
        deadline = time.monotonic() + 30
        while gateway.pool.get(MODEL, STAGING) is None or gateway.pool.get(MODEL, PROD) is None:
            assert time.monotonic() < deadline, "the version never loaded"
            time.sleep(0.01)
        policy = {"weights": {"Production": 100}, "shadow": {"target": "Staging", "percent": 100}}
        gateway.policies.set(MODEL, policy_from_dict(policy), ADMIN)
        before = {o: shadow_count(o) for o in ("agree", "disagree", "error", "dropped")}
        body = json.dumps({"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}).encode()
        rounds, concurrency = 40, 8

        async def load() -> int:
            answered = 0
            for _ in range(rounds):
                answers = await asyncio.gather(
                    *(
                        gateway.requests.invoke(MODEL, None, body, "application/json")
                        for _ in range(concurrency)
                    )
                )
                answered += len(answers)
                await asyncio.sleep(0)  # let the shadow copies join the next batch
            # Shadow copies are answered on this loop: wait for all of them before it closes.
            deadline = time.monotonic() + 60
            while sum(shadow_count(o) - before[o] for o in before) < answered:
                assert time.monotonic() < deadline, "shadow copies were never all answered"
                await asyncio.sleep(0.01)
            return answered

        answered = asyncio.run(load())
    finally:
        gateway.mirror.stop()
        gateway.pool.stop()
    assert answered == rounds * concurrency
    counted = {o: shadow_count(o) - before[o] for o in before}
    assert counted["error"] == 0 and counted["disagree"] == 0
    assert counted["agree"] + counted["dropped"] == answered
    assert counted["agree"] > 0  # shadow copies did run
    assert model.overlaps == 0, f"{model.overlaps} predicts ran beside another one"
