"""Traffic policies end to end: splits, sticky keys, policy changes from the registry, a
garbage tag, shadow traffic, and the admin API's auth. Two gateways sharing a request id
key, with feedback across them: test_ab_test.py."""

from __future__ import annotations

import json
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.integration.harness import (
    ALL_FEATURES,
    Gateway,
    Registered,
    Registry,
    metric_samples,
    run_cli,
    split_payload,
    wait_until,
)

pytestmark = pytest.mark.integration

POLL = 0.5
TOKEN = "s3cret-admin-token"
TAG = "stageserve.traffic"

SLOW_MODEL = """
import time

import mlflow
from mlflow.pyfunc import PythonModel


class Slow(PythonModel):
    def predict(self, context, model_input, params=None):
        time.sleep(0.2)
        return (model_input["age"] * 0 + 1.0).to_numpy()


mlflow.models.set_model(Slow())
"""


@dataclass
class Setup:
    registry: Registry
    gateway: Gateway
    split: str  # model with Production v1 and Staging v2
    v1: Registered
    v2: Registered
    shadowed: str  # model with a Ridge in Production and a slow model in Staging


@pytest.fixture(scope="module")
def setup(mlflow_server, registry, tmp_path_factory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("traffic")
    split, shadowed = "traffic-split", "traffic-shadow"
    v1 = registry.register_ridge(split, ALL_FEATURES[:4], alpha=1.0)
    registry.transition(split, v1.version, "Production")
    v2 = registry.register_ridge(split, ALL_FEATURES, alpha=0.3)
    registry.transition(split, v2.version, "Staging")
    primary = registry.register_ridge(shadowed, ALL_FEATURES, alpha=1.0)
    registry.transition(shadowed, primary.version, "Production")
    slow = registry.register_from_code(shadowed, SLOW_MODEL, root)
    registry.transition(shadowed, slow, "Staging")
    gateway = Gateway(
        root, mlflow_server.uri, [split, shadowed], "--poll-interval", str(POLL),
        env={"STAGESERVE_ADMIN_TOKEN": TOKEN, "STAGESERVE_SHADOW_QUEUE": "4"},
    )  # fmt: skip
    gateway.start()
    try:
        yield Setup(registry, gateway, split, v1, v2, shadowed)
    finally:
        gateway.stop()


def traffic_cli(*args: str) -> subprocess.CompletedProcess:
    return run_cli("traffic", *args)


def view(gateway: Gateway, model: str) -> dict:
    return gateway.get(f"/admin/models/{model}/traffic").json()


def send(gateway: Gateway, model: str, count: int, threads: int = 4, **headers: str) -> list:
    """`count` predictions over `threads` keep-alive connections: (status, target, version)."""
    results: list[tuple[int, str, str]] = []

    def worker(n: int) -> None:
        with httpx.Client(timeout=30) as client:
            for _ in range(n):
                r = client.post(
                    f"{gateway.url}/models/{model}/invocations",
                    json=split_payload(),
                    headers=headers,
                )
                results.append(
                    (
                        r.status_code,
                        r.headers.get("X-Model-Target", ""),
                        r.headers.get("X-Model-Version", ""),
                    )
                )

    pool = [threading.Thread(target=worker, args=(count // threads,)) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    return results


def test_split_set_with_the_cli(setup: Setup) -> None:
    g, model = setup.gateway, setup.split
    done = traffic_cli(
        "set", model, "Production=70", "Staging=30", "--registry-uri", setup.registry.uri
    )
    assert done.returncode == 0, done.stderr
    written = json.loads(setup.registry.client.get_registered_model(model).tags[TAG])
    assert written == {"weights": {"Production": 70, "Staging": 30}, "sticky": False}
    assert wait_until(
        lambda: view(g, model)["policy"]["weights"] == {"Production": 70, "Staging": 30},
        2 * POLL + 3,
    )
    shown = traffic_cli("show", model, "--registry-uri", setup.registry.uri)
    assert json.loads(shown.stdout)["policy"]["weights"] == {"Production": 70, "Staging": 30}

    results = send(g, model, 2000)
    assert len(results) == 2000
    assert all(status == 200 for status, _, _ in results)
    counts = Counter(target for _, target, _ in results)
    share = counts["Production"] / 2000
    print(f"\n70/30 split over 2000 requests: Production {share:.3f}")
    assert 0.67 <= share <= 0.73, counts
    versions = {(t, v) for _, t, v in results}
    assert versions == {("Production", setup.v1.version), ("Staging", setup.v2.version)}

    metrics = g.get("/metrics").text
    weights = metric_samples(metrics, "stageserve_traffic_weight")
    assert weights[(("model", model), ("target", "Production"))] == pytest.approx(0.7)
    routing = metric_samples(metrics, "stageserve_routing_decisions_total")
    assert (
        routing[(("how", "random"), ("model", model), ("target", "Staging"))] == counts["Staging"]
    )


def test_cli_refuses_bad_policies_and_writes_nothing(setup: Setup) -> None:
    model = setup.split
    before = setup.registry.client.get_registered_model(model).tags.get(TAG)
    for args in (
        ["Production=-5"],
        ["Production=0", "Staging=0"],
        ["Production=ten"],
        ["@ghost=10"],
        ["Production=90", "--shadow", "Staging:150"],
    ):
        done = traffic_cli("set", model, *args, "--registry-uri", setup.registry.uri)
        assert done.returncode == 2, (args, done.stderr)
        assert "invalid traffic policy" in done.stderr
    assert setup.registry.client.get_registered_model(model).tags.get(TAG) == before


def test_policy_change_in_the_registry_applies_without_failures(setup: Setup) -> None:
    g, model, client = setup.gateway, setup.split, setup.registry.client
    results: list[tuple[int, str, str]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                r = http.post(f"{g.url}/models/{model}/invocations", json=split_payload())
                results.append((r.status_code, r.headers.get("X-Model-Target", ""), ""))

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        changed_at = time.monotonic()
        client.set_registered_model_tag(model, TAG, json.dumps({"weights": {"Staging": 1}}))
        assert wait_until(lambda: view(g, model)["policy"]["weights"] == {"Staging": 1}, 10)
        applied_in = time.monotonic() - changed_at
        print(f"\npolicy change applied in {applied_in:.2f}s (poll interval {POLL}s)")
        assert applied_in < 2 * POLL + 0.5
        mark = len(results)
        assert wait_until(lambda: len(results) > mark + 50, 30)

        # A tag someone set to garbage never breaks serving: the last good policy stays.
        client.set_registered_model_tag(model, TAG, "{not json")
        assert wait_until(lambda: view(g, model)["error"] is not None, 10)
        assert view(g, model)["policy"]["weights"] == {"Staging": 1}
        after_garbage = len(results)
        assert wait_until(lambda: len(results) > after_garbage + 50, 30)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert [r for r in results if r[0] != 200] == []
    assert {t for _, t, _ in results[mark:]} == {"Staging"}
    metrics = g.get("/metrics").text
    assert metric_samples(metrics, "stageserve_traffic_policy_valid")[(("model", model),)] == 0
    assert (
        metric_samples(metrics, "stageserve_traffic_policy_errors_total")[(("model", model),)] >= 1
    )
    assert (
        "invalid" in g.state()["models"][0]["traffic"]["error"].lower() or view(g, model)["error"]
    )


def test_admin_api_auth_and_validation(setup: Setup) -> None:
    g, model, client = setup.gateway, setup.split, setup.registry.client
    url = f"/admin/models/{model}/traffic"
    good = {"weights": {"Production": 90, "Staging": 10}}
    before = client.get_registered_model(model).tags.get(TAG)
    no_token = httpx.put(g.url + url, json=good)
    wrong = httpx.put(g.url + url, json=good, headers={"Authorization": "Bearer nope"})
    assert no_token.status_code == 401 and wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"] == "Bearer"
    assert set(wrong.json()) == {"error_code", "message"}
    assert TOKEN not in wrong.text
    auth = {"Authorization": f"Bearer {TOKEN}"}
    bad = [
        ({"weights": {"Production": -1}}, "Production"),
        ({"weights": {"Production": 0, "Staging": 0}}, "zero"),
        ({"weights": {"@ghost": 10}}, "@ghost"),
        ({"weights": {"Production": "ten"}}, "Production"),
        ({"weights": {"Production": 1}, "shadow": {"target": "Staging", "percent": 0}}, "percent"),
        ({"weigths": {"Production": 1}}, "weigths"),
    ]
    for policy, mentioned in bad:
        r = httpx.put(g.url + url, json=policy, headers=auth)
        assert r.status_code == 400, (policy, r.text)
        assert mentioned in r.json()["message"], (policy, r.text)
    garbage = httpx.put(g.url + url, content=b"{nope", headers=auth)
    assert garbage.status_code == 400
    assert client.get_registered_model(model).tags.get(TAG) == before

    ok = httpx.put(g.url + url, json=good, headers=auth)
    assert ok.status_code == 200, ok.text
    assert ok.json()["policy"]["weights"] == {"Production": 90, "Staging": 10}
    assert json.loads(client.get_registered_model(model).tags[TAG])["weights"] == good["weights"]
    assert view(g, model)["policy"]["weights"] == good["weights"]  # applied at once

    # Pin a request to a target; unknown targets name the valid ones.
    pinned = g.post(
        f"/models/{model}/invocations", json=split_payload(), headers={"X-Model-Target": "Staging"}
    )
    assert pinned.headers["X-Model-Target"] == "Staging"
    unknown = g.post(
        f"/models/{model}/invocations", json=split_payload(), headers={"X-Model-Target": "@nope"}
    )
    assert unknown.status_code == 400 and "Production, Staging" in unknown.json()["message"]

    cleared = httpx.delete(g.url + url, headers=auth)
    assert cleared.status_code == 200
    assert cleared.json()["source"] == "default"
    assert TAG not in client.get_registered_model(model).tags
    answers = send(g, model, 40, threads=2)
    assert {t for _, t, _ in answers} == {"Production"}


def test_empty_target_gets_no_traffic(mlflow_server, registry, model_name, tmp_path) -> None:
    v1 = registry.register_ridge(model_name, ALL_FEATURES, alpha=1.0)
    registry.transition(model_name, v1.version, "Production")
    v2 = registry.register_ridge(model_name, ALL_FEATURES, alpha=0.2)
    registry.transition(model_name, v2.version, "Staging")
    registry.client.set_registered_model_tag(
        model_name, TAG, json.dumps({"weights": {"Production": 50, "Staging": 50}, "sticky": True})
    )
    gateway = Gateway(tmp_path, mlflow_server.uri, [model_name], "--poll-interval", str(POLL))
    try:
        gateway.start()
        keys = [f"user-{i}" for i in range(200)]

        def targets(gateway: Gateway) -> list[str]:
            with httpx.Client(timeout=30) as client:
                return [
                    client.post(
                        gateway.url + "/invocations",
                        json=split_payload(),
                        headers={"X-Routing-Key": k},
                    ).headers["X-Model-Target"]
                    for k in keys
                ]

        # Sticky: the same keys go to the same targets again (across two gateways:
        # test_ab_test.py), and the split is about the policy's.
        a = targets(gateway)
        assert a == targets(gateway)
        assert 0.35 < a.count("Production") / len(a) < 0.65

        # A target with no version gets no traffic; its share goes to the others.
        registry.transition(model_name, v2.version, "Archived")
        assert wait_until(
            lambda: gateway.target_state(model_name, "Staging")["status"] == "empty", 2 * POLL + 5
        )
        assert set(targets(gateway)) == {"Production"}
        weights = metric_samples(gateway.get("/metrics").text, "stageserve_traffic_weight")
        assert weights[(("model", model_name), ("target", "Production"))] == 1.0
        assert weights[(("model", model_name), ("target", "Staging"))] == 0.0
        # The required target emptied too: fail static, it keeps serving, flagged stale.
        registry.transition(model_name, v1.version, "Archived")
        assert wait_until(
            lambda: gateway.target_state(model_name, "Production")["status"] == "stale", 10
        )
        assert set(targets(gateway)) == {"Production"}

        # Without STAGESERVE_ADMIN_TOKEN, admin writes are off and say why.
        off = httpx.put(
            gateway.url + f"/admin/models/{model_name}/traffic", json={"weights": {"Production": 1}}
        )
        assert off.status_code == 403
        assert "STAGESERVE_ADMIN_TOKEN" in off.json()["message"]
    finally:
        gateway.stop()


def test_shadow_never_slows_the_primary(setup: Setup) -> None:
    g, model = setup.gateway, setup.shadowed
    auth = {"Authorization": f"Bearer {TOKEN}"}
    url = f"/admin/models/{model}/traffic"

    def median_latency(n: int = 60) -> float:
        times = []
        with httpx.Client(timeout=30) as client:
            for _ in range(n):
                started = time.perf_counter()
                r = client.post(f"{g.url}/models/{model}/invocations", json=split_payload())
                times.append(time.perf_counter() - started)
                assert r.status_code == 200 and r.headers["X-Model-Target"] == "Production"
        return statistics.median(times)

    assert (
        httpx.put(g.url + url, json={"weights": {"Production": 1}}, headers=auth).status_code == 200
    )
    without = median_latency()
    shadow = {"weights": {"Production": 1}, "shadow": {"target": "Staging", "percent": 100}}
    assert httpx.put(g.url + url, json=shadow, headers=auth).status_code == 200
    with_shadow = median_latency()
    print(
        f"\nmedian latency without shadow {without * 1000:.1f} ms, "
        f"with a 200 ms shadow {with_shadow * 1000:.1f} ms"
    )
    assert with_shadow < without + 0.05  # the shadow model sleeps 200 ms per request

    def outcomes() -> dict[str, float]:
        samples = metric_samples(g.get("/metrics").text, "stageserve_shadow_requests_total")
        return {dict(k)["outcome"]: v for k, v in samples.items() if dict(k)["model"] == model}

    assert wait_until(lambda: sum(outcomes().values()) == 60, 10), (
        outcomes(),
        [line for line in g.get("/metrics").text.splitlines() if "shadow" in line],
        view(g, model),
    )
    seen = outcomes()
    assert seen.get("disagree", 0) >= 1  # compared: a constant 1.0 vs a Ridge regression
    assert seen.get("dropped", 0) >= 1  # the queue holds 4; the rest is dropped and counted
    assert seen.get("agree", 0) == 0
