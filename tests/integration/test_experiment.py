"""A model's experiment on one real two-worker gateway: after a traffic policy change
and predictions split between Production and Staging, ``GET
/admin/models/{name}/experiment`` and ``stageserve experiment show`` count exactly the
requests each target and version answered since the change (whichever worker answered),
with a latency quantile shape that holds; what came before the change is not counted."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.harness import (
    ALL_FEATURES,
    Gateway,
    MlflowServer,
    Registry,
    run_cli,
    split_payload,
    wait_until,
)

pytestmark = pytest.mark.integration

REQUESTS = 40


@pytest.fixture
def gateway(
    mlflow_server: MlflowServer, registry: Registry, model_name: str, tmp_path: Path
) -> Iterator[Gateway]:
    v1 = registry.register_ridge(model_name, ALL_FEATURES, alpha=1.0)
    v2 = registry.register_ridge(model_name, ALL_FEATURES, alpha=0.5)
    registry.transition(model_name, v1.version, "Production")
    registry.transition(model_name, v2.version, "Staging")
    gateway = Gateway(
        tmp_path, mlflow_server.uri, [model_name], "--workers", "2", "--poll-interval", "0.5"
    ).start()
    try:
        yield gateway
    finally:
        gateway.stop()


def answer_of(gateway: Gateway, model: str, client: httpx.Client) -> httpx.Response:
    answer = client.post(
        f"{gateway.url}/models/{model}/invocations", json=split_payload(), timeout=30
    )
    assert answer.status_code == 200, answer.text
    return answer


def who(answer: httpx.Response) -> tuple[str, int]:
    return answer.headers["X-Model-Target"], int(answer.headers["X-Model-Version"])


def predict(gateway: Gateway, model: str, client: httpx.Client) -> tuple[str, int]:
    return who(answer_of(gateway, model, client))


def test_the_experiment_counts_what_each_version_answered_since_the_policy_changed(
    gateway: Gateway, mlflow_server: MlflowServer, model_name: str
) -> None:
    path = f"/admin/models/{model_name}/experiment"
    with httpx.Client() as client:  # before the split: all to Production, not counted
        before = Counter(predict(gateway, model_name, client) for _ in range(5))
    assert before == {("Production", 1): 5}

    written = run_cli(
        "traffic", "set", model_name, "Production=50", "Staging=50",
        "--registry-uri", mlflow_server.uri,
    )  # fmt: skip
    assert written.returncode == 0, written.stderr

    def split_applied() -> bool:
        answer = gateway.get(path).json()
        return (
            answer["window"]["since"] == "policy_change" and len(answer["policy"]["weights"]) == 2
        )

    assert wait_until(split_applied, 30, 0.1)
    # Both workers route by the new policy once each has polled (0.5 s); counting is by
    # what answered either way.
    with httpx.Client() as client:  # new connections: both workers answer some
        answers = [answer_of(gateway, model_name, client) for _ in range(REQUESTS)]
    answered = Counter(who(a) for a in answers)
    assert set(answered) == {("Production", 1), ("Staging", 2)}

    answer = gateway.get(path)
    assert answer.status_code == 200
    result = answer.json()
    counted = {(row["target"], row["version"]): row["requests"] for row in result["targets"]}
    assert counted == dict(answered)
    assert result["control"] == {"target": "Production", "version": 1}
    assert result["window"]["start"] < result["window"]["end"]
    for row in result["targets"]:
        assert row["errors"] == 0 and row["error_rate"] == 0
        p50, p99 = row["latency_seconds"]["p50"], row["latency_seconds"]["p99"]
        assert 0 < p50 <= p99 <= 10, row
        assert row["feedback"] == 0 and row["reward"]["mean"] is None
    staging = result["targets"][1]
    assert staging["target"] == "Staging" and staging["vs_control"]["undefined"]

    shown = run_cli("experiment", "show", model_name, "--url", gateway.url, "--json")
    assert shown.returncode == 0, shown.stderr
    assert {
        (row["target"], row["version"]): row["requests"]
        for row in json.loads(shown.stdout)["targets"]
    } == dict(answered)
    table = run_cli("experiment", "show", model_name, "--url", gateway.url)
    assert table.returncode == 0, table.stderr
    rows = {line.split()[0]: line.split()[:3] for line in table.stdout.splitlines()[4:6]}
    assert rows == {
        "Production": ["Production", "1", str(answered["Production", 1])],
        "Staging": ["Staging", "2", str(answered["Staging", 2])],
    }
    print(table.stdout)  # for the record (pytest -s)

    # Feedback on every answer, in one batch: the rewards land on the version that
    # answered each request (read back from its signed id, not from the client).
    rewards = {
        answer.headers["X-Feedback-Id"]: (who(answer), float(index % 3 == 0) + 0.5 * index)
        for index, answer in enumerate(answers)
    }
    posted = httpx.post(
        f"{gateway.url}/models/{model_name}/feedback",
        json=[{"request_id": rid, "reward": reward} for rid, (_, reward) in rewards.items()],
        timeout=30,
    )
    assert posted.status_code == 200, posted.text
    assert posted.json()["accepted"] == REQUESTS
    by_version: dict[tuple[str, int], list[float]] = {}
    for key, reward in rewards.values():
        by_version.setdefault(key, []).append(reward)
    result = gateway.get(path).json()
    for row in result["targets"]:
        mine = by_version[row["target"], row["version"]]
        assert row["feedback"] == len(mine)
        assert row["reward"]["mean"] == pytest.approx(sum(mine) / len(mine), rel=1e-12)
    staging = result["targets"][1]
    assert staging["vs_control"]["test"] == "welch"  # continuous rewards on both sides
    assert 0 <= staging["vs_control"]["p_value"] <= 1

    refused = gateway.get(path, params={"since": "2h"})
    assert refused.status_code == 400 and "--prometheus" in refused.json()["message"]
    assert gateway.get("/admin/models/not-served/experiment").status_code == 404
