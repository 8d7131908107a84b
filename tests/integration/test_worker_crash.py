"""A worker killed under load: its replacement must not take traffic cold, and the
metrics must forget it (issue 9, items 2 and 3)."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.integration.harness import (
    ALL_FEATURES,
    Gateway,
    metric_samples,
    split_payload,
    wait_until,
)

pytestmark = pytest.mark.integration

POLL = 0.5
# Connection: close every few requests, so new connections keep reaching both workers.
ENV = {"STAGESERVE_KEEPALIVE_MAX_REQUESTS": "10"}


@dataclass
class Outcomes:
    """Responses by status, and connection errors, counted per phase."""

    statuses: dict[int, int] = field(default_factory=dict)
    connection_errors: int = 0
    pings: dict[int, int] = field(default_factory=dict)  # /ping answers by status

    def count(self, status: int) -> int:
        return self.statuses.get(status, 0)


class Load:
    """Clients posting predictions until stopped; outcomes go to the current phase."""

    def __init__(self, url: str, clients: int = 3) -> None:
        self.url = url
        self.phases: list[Outcomes] = [Outcomes()]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop) for _ in range(clients)]
        self._threads.append(threading.Thread(target=self._probe))

    def new_phase(self) -> Outcomes:
        with self._lock:
            self.phases.append(Outcomes())
            return self.phases[-1]

    def _record(self, status: int | None) -> None:
        with self._lock:
            phase = self.phases[-1]
            if status is None:
                phase.connection_errors += 1
            else:
                phase.statuses[status] = phase.statuses.get(status, 0) + 1

    def _loop(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    r = client.post(self.url + "/invocations", json=split_payload())
                except httpx.TransportError:
                    self._record(None)
                    continue
                self._record(r.status_code)

    def _probe(self) -> None:
        """A load balancer's readiness probe, ten times a second."""
        while not self._stop.wait(0.1):
            try:
                status = httpx.get(self.url + "/ping", timeout=5).status_code
            except httpx.TransportError:
                status = 0
            with self._lock:
                pings = self.phases[-1].pings
                pings[status] = pings.get(status, 0) + 1

    def total(self, status: int) -> int:
        with self._lock:
            return sum(p.count(status) for p in self.phases)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


def _scrape(gateway: Gateway) -> str:
    return gateway.get("/metrics").text


def _metric_pids(text: str) -> set[int]:
    samples = metric_samples(text, "stageserve_process_start_time_seconds")
    return {int(dict(labels)["pid"]) for labels in samples}


def _target_ready(text: str, model: str) -> float:
    ready = metric_samples(text, "stageserve_target_ready")
    return ready.get((("model", model), ("target", "Production")), 0.0)


def _all_ready(gateway: Gateway, model: str, pids: list[int]) -> bool:
    """Both workers run, report their process series, and have the target loaded."""
    text = _scrape(gateway)
    return set(pids) <= _metric_pids(text) and _target_ready(text, model) == 1


def _replace(gateway: Gateway, model: str, victim: int) -> tuple[list[int], float, float]:
    """SIGKILL one worker; wait for its replacement to run and to be ready.
    Returns the new worker pids, seconds to the replacement, seconds to ready."""
    before = gateway.worker_pids()
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    pids: list[int] = []

    def replaced() -> bool:
        pids[:] = gateway.worker_pids()
        return len(pids) == 2 and victim not in pids

    assert wait_until(replaced, 90, 0.02), f"no replacement for worker {victim}"
    respawned_at = time.monotonic()
    assert wait_until(lambda: _all_ready(gateway, model, pids), 120, 0.1), gateway.log_tail()
    ready_at = time.monotonic()
    (newcomer,) = set(pids) - set(before)
    # The replacement does take connections (each request below is a new one).
    assert wait_until(lambda: gateway.state()["worker"]["pid"] == newcomer, 60, 0.01)
    return pids, respawned_at - killed_at, ready_at - killed_at


def _start(tmp_path: Path, registry, mlflow_server, model_name: str) -> Gateway:
    v1 = registry.register_ridge(model_name, ALL_FEATURES, alpha=1.0)
    registry.transition(model_name, v1.version, "Production")
    env = {**ENV, "STAGESERVE_RUNTIME_DIR": str(tmp_path / "runtime")}
    gateway = Gateway(
        tmp_path, mlflow_server.uri, [model_name], "--poll-interval", str(POLL),
        "--workers", "2", env=env,
    ).start()  # fmt: skip
    return gateway


@pytest.mark.timeout(900)  # three loads under load on a busy machine take minutes
def test_respawned_worker_takes_no_traffic_cold(
    mlflow_server, registry, model_name, tmp_path
) -> None:
    gateway = _start(tmp_path, registry, mlflow_server, model_name)
    try:
        pids = gateway.worker_pids()
        assert len(pids) == 2
        assert wait_until(lambda: _all_ready(gateway, model_name, pids), 120, 0.1)
        figures = []
        with Load(gateway.url) as load:
            assert wait_until(lambda: load.total(200) > 50, 60)
            for kill in range(3):
                phase = load.new_phase()
                pids, to_respawn, to_ready = _replace(gateway, model_name, pids[kill % 2])
                # Keep the load going while the replacement takes its share of connections.
                settled = load.total(200) + 300
                assert wait_until(lambda s=settled: load.total(200) >= s, 60)
                figures.append((kill, phase, to_respawn, to_ready))
                print(
                    f"kill {kill + 1}: {phase.count(503)} x 503, {phase.connection_errors} "
                    f"connection errors, {phase.count(200)} x 200, replacement after "
                    f"{to_respawn:.1f} s, ready after {to_ready:.1f} s; /ping: {phase.pings}",
                    flush=True,
                )
        assert all(phase.count(200) > 0 for _, phase, _, _ in figures)
        five_hundreds = {s: n for p in load.phases for s, n in p.statuses.items() if s != 200}
        assert five_hundreds == {}, f"non-200 answers across kills: {five_hundreds}"
    finally:
        gateway.stop()


PROCESS_FAMILIES = (
    "stageserve_process_resident_memory_bytes",
    "stageserve_process_cpu_seconds",
    "stageserve_process_open_fds",
    "stageserve_process_start_time_seconds",
)


def _requests_total(text: str, model: str) -> float:
    samples = metric_samples(text, "stageserve_requests_total")
    return sum(v for labels, v in samples.items() if ("model", model) in labels)


def test_a_killed_workers_metrics_and_socket_are_forgotten(
    mlflow_server, registry, model_name, tmp_path
) -> None:
    gateway = _start(tmp_path, registry, mlflow_server, model_name)
    try:
        pids = gateway.worker_pids()
        assert wait_until(lambda: _all_ready(gateway, model_name, pids), 120, 0.1)
        victim = pids[0]
        assert (tmp_path / "runtime" / f"worker-{victim}.sock").exists()
        with Load(gateway.url, clients=4) as load:
            assert wait_until(lambda: load.total(200) > 200, 60)
            counted = _requests_total(_scrape(gateway), model_name)
            pids, _, _ = _replace(gateway, model_name, victim)  # requests in flight on it
        text = _scrape(gateway)  # idle now: one scrape after the replacement is up
        for family in PROCESS_FAMILIES:
            samples = metric_samples(text, family)
            assert {int(dict(labels)["pid"]) for labels in samples} == set(pids), family
        in_flight = metric_samples(text, "stageserve_in_flight_requests")
        assert in_flight == {(("model", model_name),): 0.0}
        assert _requests_total(text, model_name) >= counted  # a dead worker's still count
        assert not (tmp_path / "runtime" / f"worker-{victim}.sock").exists()
        assert (tmp_path / "runtime" / f"worker-{pids[0]}.sock").exists()
    finally:
        gateway.stop()


def test_the_harness_stops_workers_whose_supervisor_died(
    mlflow_server, registry, model_name, tmp_path
) -> None:
    """Workers run in their own sessions: a supervisor killed first leaves them to init,
    and a group kill cannot reach them. Gateway.stop() must."""
    import psutil

    gateway = _start(tmp_path, registry, mlflow_server, model_name)
    workers = [psutil.Process(pid) for pid in gateway.worker_pids()]
    try:
        assert len(workers) == 2
        assert gateway.proc is not None
        os.kill(gateway.proc.pid, signal.SIGKILL)
        gateway.proc.wait(30)
        assert all(w.is_running() for w in workers)  # orphaned, still running
    finally:
        gateway.stop()
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
