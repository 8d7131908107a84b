"""A simulated A/B test across a fleet, end to end: a real `mlflow server`, two
separately started gateways sharing a request id key and a feedback token, and a real
Prometheus scraping both.

`stageserve traffic set NAME Production=50 Staging=50 --sticky` splits users between
v1 (Production) and v2 (Staging). The test plays the users: each sends one prediction to
one gateway, and a reward is drawn from the version that answered (mean 0.50 for v1,
0.56 for v2, 0/1 rewards, a seeded generator). Half of the feedback goes to the *other*
gateway than the one that answered. `stageserve experiment show NAME --prometheus URL`
must then credit every item to the version that answered, report the difference with a
p-value under 0.01 and an interval that holds the true 0.06; forged ids are refused
and counted, a duplicate is counted once.
"""

from __future__ import annotations

import json
import math
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
from scipy import stats

from service.experiments.request_ids import RequestIdSigner
from tests.integration.harness import (
    ALL_FEATURES,
    Gateway,
    metric_samples,
    run_cli,
    split_payload,
    wait_until,
)
from tests.support.prometheus import PrometheusServer

pytestmark = pytest.mark.integration

USERS = 4000  # one prediction each; about 2,000 per version
TRUE_MEANS = {"1": 0.50, "2": 0.56}  # by the version that answered
SEED = 20261130
FEEDBACK_TOKEN = "ab-test-feedback-token"
BATCH = 500


@dataclass(frozen=True)
class Answered:
    user: int
    gateway: int  # which gateway answered (0 or 1)
    target: str
    version: str
    feedback_id: str


@dataclass
class Fleet:
    gateways: tuple[Gateway, Gateway]
    prometheus: PrometheusServer
    model: str
    auth: dict[str, str]


@pytest.fixture
def fleet(mlflow_server, registry, model_name, tmp_path) -> Iterator[Fleet]:
    v1 = registry.register_ridge(model_name, ALL_FEATURES, alpha=1.0)
    registry.transition(model_name, v1.version, "Production")
    v2 = registry.register_ridge(model_name, ALL_FEATURES, alpha=0.3)
    registry.transition(model_name, v2.version, "Staging")
    key, token = tmp_path / "request-id.key", tmp_path / "feedback-token"
    key.write_text(secrets.token_hex(32) + "\n")
    token.write_text(FEEDBACK_TOKEN + "\n")
    shared = ("--poll-interval", "0.5", "--request-id-key-file", str(key),
              "--feedback-token-file", str(token))  # fmt: skip
    gateways = (
        Gateway(tmp_path, mlflow_server.uri, [model_name], *shared),
        Gateway(tmp_path, mlflow_server.uri, [model_name], *shared),
    )
    prometheus = PrometheusServer(tmp_path, [f"127.0.0.1:{g.port}" for g in gateways])
    try:
        prometheus.start()
        with ThreadPoolExecutor(2) as pool:  # the two start side by side
            list(pool.map(Gateway.start, gateways))
        yield Fleet(gateways, prometheus, model_name, {"Authorization": f"Bearer {FEEDBACK_TOKEN}"})
    finally:
        try:
            for gateway in gateways:
                gateway.stop()
        finally:
            prometheus.stop()


def predict_users(fleet: Fleet, users: range, other: bool = False) -> list[Answered]:
    """User ``u`` sends one prediction, keyed by its id, to gateway ``u % 2`` (or to the
    other one), over four keep-alive connections to each."""
    threads = 4
    answers: list[Answered] = []
    failures: list[str] = []

    def play(share: range) -> None:
        clients = [httpx.Client(base_url=g.url, timeout=30) for g in fleet.gateways]
        try:
            for user in share:
                side = (user + other) % 2
                answer = clients[side].post(
                    f"/models/{fleet.model}/invocations",
                    json=split_payload(),
                    headers={"X-Routing-Key": f"user-{user}"},
                )
                if answer.status_code != 200:
                    failures.append(f"user {user}: {answer.status_code} {answer.text}")
                    continue
                answers.append(
                    Answered(
                        user,
                        side,
                        answer.headers["X-Model-Target"],
                        answer.headers["X-Model-Version"],
                        answer.headers["X-Feedback-Id"],
                    )
                )
        finally:
            for client in clients:
                client.close()

    pool = [threading.Thread(target=play, args=(users[i::threads],)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(300)
    assert not failures, failures[:5]
    return sorted(answers, key=lambda a: a.user)


def send_feedback(fleet: Fleet, side: int, items: list[dict]) -> Counter:
    """Post ``items`` to gateway ``side`` in batches: the receipts' counts added up."""
    total: Counter = Counter()
    for start in range(0, len(items), BATCH):
        receipt = fleet.gateways[side].post(
            f"/models/{fleet.model}/feedback", json=items[start : start + BATCH], headers=fleet.auth
        )
        assert receipt.status_code == 200, receipt.text
        body = receipt.json()
        assert body["errors"] == [], body["errors"][:3]
        total.update({k: body[k] for k in ("accepted", "duplicates", "refused")})
    return total


def two_proportion_p_value(k1: int, n1: int, k2: int, n2: int) -> float:
    """The pooled two-proportion z-test's two-sided p-value, by scipy's normal."""
    pooled = (k1 + k2) / (n1 + n2)
    z = (k2 / n2 - k1 / n1) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return float(2 * stats.norm.sf(abs(z)))


def test_a_simulated_ab_test_across_two_gateways(fleet: Fleet, mlflow_server) -> None:
    model, first = fleet.model, fleet.gateways[0]
    written = run_cli(
        "traffic", "set", model, "Production=50", "Staging=50", "--sticky",
        "--registry-uri", mlflow_server.uri,
    )  # fmt: skip
    assert written.returncode == 0, written.stderr

    def policy_applied(gateway: Gateway) -> bool:
        policy = gateway.get(f"/admin/models/{model}/traffic").json()["policy"]
        return policy == {"weights": {"Production": 50, "Staging": 50}, "sticky": True}

    assert wait_until(lambda: all(policy_applied(g) for g in fleet.gateways), 15, 0.1)

    answers = predict_users(fleet, range(USERS))
    assert len(answers) == USERS
    served = Counter((a.target, a.version) for a in answers)
    assert set(served) == {("Production", "1"), ("Staging", "2")}
    assert 0.45 < served["Production", "1"] / USERS < 0.55  # 50/50 by users' hashes
    # Sticky: a user's second request, sent to the other gateway, gets the same version.
    again = predict_users(fleet, range(400), other=True)
    assert [(a.user, a.version) for a in again] == [(a.user, a.version) for a in answers[:400]]
    assert all(a.gateway != answers[a.user].gateway for a in again)

    # Rewards drawn from the answering version; half the feedback goes to the other side.
    draw = random.Random(SEED)
    rewards = {a.user: int(draw.random() < TRUE_MEANS[a.version]) for a in answers}
    posts: list[list[dict]] = [[], []]
    for a in answers:
        side = 1 - a.gateway if a.user % 4 < 2 else a.gateway
        posts[side].append({"request_id": a.feedback_id, "reward": rewards[a.user]})
    assert abs(len(posts[0]) - len(posts[1])) <= 2
    refused = httpx.post(f"{first.url}/models/{model}/feedback", json=posts[0][:1], timeout=10)
    assert refused.status_code == 401  # the fleet requires its feedback token
    receipts = send_feedback(fleet, 0, posts[0]) + send_feedback(fleet, 1, posts[1])
    assert receipts == Counter(accepted=USERS)

    # A duplicate (the same batch again, to the same gateway) is counted once.
    again_receipt = send_feedback(fleet, 1, posts[1][:BATCH])
    assert again_receipt == Counter(duplicates=BATCH)
    # Forged ids are refused and counted: signed with another key, or altered.
    other_key = RequestIdSigner(secrets.token_bytes(32))
    foreign = other_key.issue(model, "Staging", 2, time.time())
    real = answers[0].feedback_id
    altered = real.replace(f".{answers[0].version}.", ".9.", 1)
    assert altered != real
    for forged in (foreign, altered):
        answer = first.post(
            f"/models/{model}/feedback", json={"request_id": forged, "reward": 1},
            headers=fleet.auth,
        )  # fmt: skip
        assert answer.status_code == 400, answer.text
        assert "not issued" in answer.json()["message"]
    refusals = metric_samples(first.get("/metrics").text, "stageserve_feedback_refused_total")
    assert refusals[(("model", model), ("reason", "forged"))] == 2

    # What the fleet should report, from what was sent.
    sent = {
        version: [rewards[a.user] for a in answers if a.version == version]
        for version in TRUE_MEANS
    }
    requests = Counter(a.version for a in answers + again)
    feedback_total = f'sum(stageserve_reward_count_total{{model="{model}"}})'
    assert wait_until(lambda: fleet.prometheus.value(feedback_total) == USERS, 20, 0.2), (
        f"Prometheus saw {fleet.prometheus.value(feedback_total)} rewards, {USERS} were sent"
    )
    requests_total = f'sum(stageserve_requests_total{{model="{model}"}})'
    assert wait_until(
        lambda: fleet.prometheus.value(requests_total) == sum(requests.values()), 20, 0.2
    )
    shown = run_cli("experiment", "show", model, "--prometheus", fleet.prometheus.url, "--json")
    assert shown.returncode == 0, shown.stderr
    result = json.loads(shown.stdout)
    assert result["control"] == {"target": "Production", "version": 1}
    rows = {str(row["version"]): row for row in result["targets"]}
    assert set(rows) == set(TRUE_MEANS)
    for version, values in sent.items():
        row = rows[version]
        assert row["requests"] == requests[version]
        assert row["errors"] == 0
        assert row["feedback"] == len(values)  # every item credited to what answered
        assert row["reward"]["mean"] == pytest.approx(sum(values) / len(values), abs=1e-12)
        assert row["reward"]["method"] == "wilson"
    vs = rows["2"]["vs_control"]
    k1, n1, k2, n2 = sum(sent["1"]), len(sent["1"]), sum(sent["2"]), len(sent["2"])
    assert vs["test"] == "two_proportions"
    assert vs["difference"] == pytest.approx(k2 / n2 - k1 / n1, abs=1e-12)
    assert vs["p_value"] == pytest.approx(two_proportion_p_value(k1, n1, k2, n2), rel=1e-9)
    assert vs["p_value"] < 0.01, vs
    assert vs["low"] < 0.06 < vs["high"], vs
    assert rows["1"]["vs_control"] is None

    # One gateway alone saw only part of the feedback: the fleet view is the sum.
    alone = first.get(f"/admin/models/{model}/experiment").json()
    assert 0 < sum(row["feedback"] for row in alone["targets"]) < USERS

    table = run_cli("experiment", "show", model, "--prometheus", fleet.prometheus.url)
    assert table.returncode == 0, table.stderr
    assert "two_proportions" in table.stdout, table.stdout
    print(table.stdout)  # what the README's "Running an A/B test" shows
