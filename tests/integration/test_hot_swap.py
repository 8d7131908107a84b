"""Hot swaps under load: no failed request, no answer from a half-loaded model,
readiness steady, and each new version served within two poll intervals plus its load.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest

from tests.integration.harness import ALL_FEATURES, Gateway, metric_samples, split_payload

pytestmark = pytest.mark.integration

POLL_INTERVAL = 1.0
CLIENTS = 8
SWAPS = 3
MIN_REQUESTS = 1000


@dataclass
class Traffic:
    """What the load threads saw."""

    results: list[list[tuple[int, str, str, float, float]]] = field(
        default_factory=lambda: [[] for _ in range(CLIENTS)]
    )
    ping_failures: list[int] = field(default_factory=list)
    pings: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def total(self) -> int:
        return sum(len(r) for r in self.results)

    def first_answer_from(self, version: str, after: float) -> float | None:
        times = [r[4] for rs in self.results for r in list(rs) if r[1] == version and r[4] >= after]
        return min(times) if times else None


def _client_loop(url: str, out: list, stop: threading.Event) -> None:
    payload = split_payload()
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            try:
                response = client.post(url + "/invocations", json=payload)
                prediction = response.json()["predictions"][0] if response.status_code == 200 else 0
                out.append(
                    (
                        response.status_code,
                        response.headers.get("X-Model-Version", ""),
                        response.headers.get("X-Model-Target", ""),
                        float(prediction),
                        time.monotonic(),
                    )
                )
            except Exception as exc:  # a transport error is a failed request too
                out.append((0, "", repr(exc), 0.0, time.monotonic()))


def _ping_loop(url: str, traffic: Traffic) -> None:
    with httpx.Client(timeout=10) as client:
        while not traffic.stop.is_set():
            status = client.get(url + "/ping").status_code
            traffic.pings += 1
            if status != 200:
                traffic.ping_failures.append(status)
            traffic.stop.wait(0.02)


def test_swaps_under_load(mlflow_server, registry, model_name, workdir) -> None:
    versions = {}
    first = registry.register_ridge(model_name, ALL_FEATURES[:4], alpha=1.0)
    versions[first.version] = first
    registry.transition(model_name, first.version, "Production")
    gateway = Gateway(
        workdir, mlflow_server.uri, [model_name], "--poll-interval", str(POLL_INTERVAL)
    ).start()
    traffic = Traffic()
    threads = [
        threading.Thread(target=_client_loop, args=(gateway.url, traffic.results[i], traffic.stop))
        for i in range(CLIENTS)
    ] + [threading.Thread(target=_ping_loop, args=(gateway.url, traffic))]
    swap_times: list[float] = []
    try:
        for thread in threads:
            thread.start()
        for k in range(SWAPS):
            # Train while traffic flows; then one registry call makes it Production.
            new = registry.register_ridge(model_name, ALL_FEATURES, alpha=0.5 / (k + 1))
            versions[new.version] = new
            transitioned_at = time.monotonic()
            registry.transition(model_name, new.version, "Production")
            deadline = transitioned_at + 30
            while traffic.first_answer_from(new.version, transitioned_at) is None:
                assert time.monotonic() < deadline, gateway.log_tail()
                time.sleep(0.01)
            swapped_at = traffic.first_answer_from(new.version, transitioned_at)
            swap_times.append(swapped_at - transitioned_at)
            load_s = gateway.target_state(model_name, "Production")["load_duration_s"]
            assert swap_times[-1] < 2 * POLL_INTERVAL + load_s, (swap_times, load_s)
        while traffic.total() < MIN_REQUESTS:
            time.sleep(0.05)
    finally:
        traffic.stop.set()
        for thread in threads:
            thread.join(30)
        metrics = gateway.get("/metrics").text
        gateway.stop()

    everything = [r for rs in traffic.results for r in rs]
    print(f"\n{len(everything)} requests; swap times (s): {[round(t, 3) for t in swap_times]}")
    assert len(everything) >= MIN_REQUESTS
    failures = [r for r in everything if r[0] != 200]
    assert failures == [], failures[:5]
    assert {r[2] for r in everything} == {"Production"}
    assert {r[1] for r in everything} == set(versions)  # each version answered, nothing else
    for _status, version, _target, prediction, _t in everything:
        assert prediction == pytest.approx(versions[version].expected())
    for client_results in traffic.results:  # once a client sees a version, never an older one
        seen = [int(r[1]) for r in client_results]
        assert seen == sorted(seen)
    assert traffic.pings > 10 and traffic.ping_failures == []
    swaps = metric_samples(metrics, "stageserve_swaps_total")
    key = (("model", model_name), ("result", "success"), ("target", "Production"))
    assert swaps[key] == SWAPS + 1
