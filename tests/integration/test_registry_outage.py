"""Pickup after a registry outage (issue 9, item 4): polls keep the poll interval during
an outage (no backoff), so a change made once the registry is back is served within two
poll intervals plus the load time, however long it was down or however often it flapped.

The gateway reaches the session's registry server through a Cable (a TCP forwarder
that can be unplugged): cut, the registry refuses connections and drops the open ones,
exactly as a stopped server does, without six restarts of an `mlflow server`.
"""

from __future__ import annotations

import time

import pytest

from tests.integration.faulty_servers import Cable
from tests.integration.harness import (
    ALL_FEATURES,
    Gateway,
    Load,
    MlflowServer,
    Registry,
    metric_samples,
    split_payload,
    wait_until,
)

pytestmark = pytest.mark.integration

POLL = 0.5
JITTER = 0.25  # registry_watcher.schedule.PollSchedule's default
SLACK = 3.0  # seconds: a busy machine


def _error_polls(gateway: Gateway) -> float:
    polls = metric_samples(gateway.get("/metrics").text, "stageserve_registry_polls_total")
    return polls.get((("outcome", "error"),), 0.0)


def _pickup(gateway: Gateway, registry: Registry, model: str, version: str) -> tuple[float, float]:
    """Transition ``version`` to Production now; (seconds until it answers, its load time)."""
    registry.transition(model, version, "Production")
    changed_at = time.monotonic()

    def serves() -> bool:
        r = gateway.post("/invocations", json=split_payload())
        return r.status_code == 200 and r.headers["X-Model-Version"] == version

    assert wait_until(serves, 60, interval=0.02), gateway.log_tail()
    took = time.monotonic() - changed_at
    load_s = gateway.target_state(model, "Production")["load_duration_s"]
    return took, load_s


def _outage(cable: Cable, gateway: Gateway, seconds: float) -> tuple[float, float]:
    """Cut the registry off for ``seconds``; (error polls during it, its measured length).
    Samples the watcher's next wait all along: never more than one jittered interval."""
    cable.cut()
    began, errors_before = time.monotonic(), _error_polls(gateway)
    longest_wait = 0.0
    while time.monotonic() - began < seconds:
        longest_wait = max(longest_wait, gateway.state()["watcher"]["next_poll_in_s"] or 0.0)
        time.sleep(0.2)  # the sampling period of an observation, not a synchronisation
    errors, length = _error_polls(gateway) - errors_before, time.monotonic() - began
    cable.plug()
    assert longest_wait <= POLL * (1 + JITTER) + 1e-6, f"the watcher waited {longest_wait}s"
    return errors, length


def test_a_change_after_an_outage_or_flaps_is_served_within_two_polls(
    mlflow_server: MlflowServer, registry: Registry, model_name: str, tmp_path
) -> None:
    v1 = registry.register_ridge(model_name, ALL_FEATURES, alpha=1.0)
    registry.transition(model_name, v1.version, "Production")
    after_outage = registry.register_ridge(model_name, ALL_FEATURES, alpha=0.5)
    after_flaps = registry.register_ridge(model_name, ALL_FEATURES, alpha=0.1)
    cable = Cable(mlflow_server.uri)
    gateway = Gateway(tmp_path, cable.uri, [model_name], "--poll-interval", str(POLL))
    try:
        gateway.start()  # if it cannot, the finally still cuts the cable
        with Load(gateway.url) as load:
            # One long outage: the old backoff had grown to 8-16 s by its end.
            errors, length = _outage(cable, gateway, 15.0)
            # About one poll per interval while down: not more (the registry is spared),
            # not fewer (the old backoff made 6 or 7 in 15 s).
            assert length / (POLL * (1 + JITTER)) * 0.6 <= errors <= length / (POLL * 0.75) + 2
            took, load_s = _pickup(gateway, registry, model_name, after_outage.version)
            print(f"\npickup after a {length:.0f}s outage: {took:.2f}s (load {load_s:.2f}s)")
            assert took <= 2 * POLL + load_s + SLACK

            # Five flaps: killed and restarted, a few seconds down each time.
            for _ in range(5):
                _outage(cable, gateway, 2.0)
            took, load_s = _pickup(gateway, registry, model_name, after_flaps.version)
            print(f"pickup after 5 flaps: {took:.2f}s (load {load_s:.2f}s)")
            assert took <= 2 * POLL + load_s + SLACK
        assert load.failures() == []
    finally:
        gateway.stop()
        cable.cut()
