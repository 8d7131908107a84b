"""A real Prometheus server, run with deploy/prometheus/prometheus.yml and alerts.yml,
scrapes a real two-worker gateway while predictions flow, and its query API sees exactly
the requests that were sent, with the right labels, one series for all workers.

The `prometheus` binary comes from Debian's `prometheus` package (.ci/run installs it);
without it this test fails, it is never skipped.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.integration.harness import (
    ALL_FEATURES,
    Gateway,
    run_cli,
    split_payload,
    wait_until,
)
from tests.support.prometheus import PrometheusServer

pytestmark = pytest.mark.integration

REQUESTS = 40


def test_prometheus_scrapes_a_two_worker_gateway(
    mlflow_server, registry, model_name, tmp_path
) -> None:
    gateway = Gateway(
        tmp_path, mlflow_server.uri, [model_name], "--workers", "2", "--poll-interval", "0.5"
    )
    instance = f"127.0.0.1:{gateway.port}"
    selector = f'job="stageserve", instance="{instance}"'
    # Prometheus first: it applies new scrape targets on a 5 s tick, which then passes
    # while the model is registered and the gateway starts (its scrapes fail until then).
    prometheus = PrometheusServer(tmp_path, [instance]).start()
    try:
        v1 = registry.register_ridge(model_name, ALL_FEATURES, alpha=1.0)
        registry.transition(model_name, v1.version, "Production")
        assert v1.version == "1"  # a fresh model name: its first version

        gateway.start()
        # Both workers up and ready (readiness is per worker) before any prediction, so
        # that requests on new connections, whichever worker takes them, all succeed.
        ready_pids: set[int] = set()

        def both_workers_ready() -> bool:
            state = httpx.get(gateway.url + "/admin/models", timeout=5).json()
            if state["ready"]:
                ready_pids.add(state["worker"]["pid"])
            return len(ready_pids) == 2

        assert wait_until(both_workers_ready, 60, 0.05), (
            f"never saw two ready workers (saw {ready_pids}):\n{gateway.log_tail()}"
        )
        assert wait_until(lambda: prometheus.value(f"up{{{selector}}}") == 1, 20, 0.2), (
            f"prometheus never scraped the gateway:\n{prometheus.log_tail()}"
        )

        def predict(_: int) -> httpx.Response:  # a new connection each: both workers serve
            return httpx.post(gateway.url + "/invocations", json=split_payload(), timeout=30)

        with ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(predict, range(REQUESTS)))
        for response in responses:
            assert response.status_code == 200, response.text
            assert response.headers["x-model-version"] == v1.version
            assert response.headers["x-model-target"] == "Production"

        successes = f'sum(stageserve_requests_total{{model="{model_name}", outcome="success"}})'
        seen: list[float | None] = [None]

        def all_counted() -> bool:
            seen[0] = prometheus.value(successes)
            return seen[0] == REQUESTS

        assert wait_until(all_counted, 20, 0.2), (
            f"prometheus saw {seen[0]} successful requests, {REQUESTS} were sent"
        )

        # One series for the whole gateway: the workers' counts are added up before the
        # scrape (multiprocess mode), with the labels the requests were served under.
        series = prometheus.query(f'stageserve_requests_total{{model="{model_name}"}}')
        assert len(series) == 1, series
        assert series[0]["metric"] == {
            "__name__": "stageserve_requests_total",
            "job": "stageserve",
            "instance": instance,
            "model": model_name,
            "target": "Production",
            "version": "1",
            "outcome": "success",
        }
        assert float(series[0]["value"][1]) == REQUESTS
        latency_count = (
            f'sum(stageserve_request_duration_seconds_count{{model="{model_name}", '
            f'target="Production", version="1"}})'
        )
        assert prometheus.value(latency_count) == REQUESTS

        loaded = (
            f'stageserve_loaded_version{{{selector}, model="{model_name}", target="Production"}}'
        )
        assert prometheus.value(loaded) == 1
        ready = f'stageserve_target_ready{{{selector}, model="{model_name}", target="Production"}}'
        assert prometheus.value(ready) == 1
        assert prometheus.value(f"stageserve_registry_up{{{selector}}}") == 1

        # The fleet's experiment, read through this Prometheus, counts what the gateway's
        # own endpoint counts (both since the policy in force was applied).
        own = httpx.get(f"{gateway.url}/admin/models/{model_name}/experiment", timeout=10).json()
        fleet = run_cli("experiment", "show", model_name, "--prometheus", prometheus.url, "--json")
        assert fleet.returncode == 0, fleet.stderr
        fleet_result = json.loads(fleet.stdout)
        for result in (own, fleet_result):
            (row,) = result["targets"]
            assert (row["target"], row["version"], row["requests"]) == ("Production", 1, REQUESTS)
        assert fleet_result["window"]["start"] == pytest.approx(own["window"]["start"], abs=1e-3)
        assert fleet_result["control"] == own["control"] == {"target": "Production", "version": 1}
        for quantile in ("p50", "p99"):
            assert fleet_result["targets"][0]["latency_seconds"][quantile] == pytest.approx(
                own["targets"][0]["latency_seconds"][quantile], rel=1e-9
            )

        # The alert rules load and evaluate against the real series, and nothing is
        # pending or firing for a healthy gateway.
        def rules_evaluated() -> bool:
            groups = prometheus.api("rules", type="alert")["groups"]
            evaluated = [r for g in groups for r in g["rules"]]
            return bool(evaluated) and all(r["health"] == "ok" for r in evaluated)

        assert wait_until(rules_evaluated, 10, 0.2), prometheus.api("rules", type="alert")
        names = {r["name"] for g in prometheus.api("rules")["groups"] for r in g["rules"]}
        assert "StageserveRequiredTargetEmpty" in names
        assert prometheus.api("alerts")["alerts"] == []
    finally:
        try:
            gateway.stop()
        finally:
            prometheus.stop()
