"""Feedback across a fleet: two separately started gateways sharing one request id key
(``--request-id-key-file``) on one registry. Feedback on an answer sent to the *other*
gateway is credited to the target and version that answered, and summing the two
gateways' counters gives exactly the rewards sent; the second gateway requires a
feedback token. (A gateway with another key refuses the ids: test_traffic.py.)"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.harness import ALL_FEATURES, Gateway, metric_samples, split_payload

pytestmark = pytest.mark.integration

TOKEN = "fleet-feedback-token"
REWARD_COUNTERS = {
    "count": "stageserve_reward_count_total",
    "positive": "stageserve_reward_positive_sum_total",
    "negative": "stageserve_reward_negative_sum_total",
    "squares": "stageserve_reward_squares_sum_total",
}


@pytest.fixture(scope="module")
def fleet(
    mlflow_server, registry, tmp_path_factory
) -> Iterator[tuple[str, dict[str, str], list[Gateway]]]:
    root: Path = tmp_path_factory.mktemp("fleet")
    name = "fleet-model"
    v1 = registry.register_ridge(name, ALL_FEATURES, alpha=1.0)
    registry.transition(name, v1.version, "Production")
    v2 = registry.register_ridge(name, ALL_FEATURES, alpha=0.5)
    registry.transition(name, v2.version, "Staging")
    key, token = root / "request-id.key", root / "feedback-token"
    key.write_text(secrets.token_hex(32) + "\n")
    token.write_text(TOKEN + "\n")
    common = ("--poll-interval", "0.5", "--request-id-key-file", str(key))
    gateways = [
        Gateway(root, mlflow_server.uri, [name], *common),
        Gateway(root, mlflow_server.uri, [name], *common, "--feedback-token-file", str(token)),
    ]
    try:
        for gateway in gateways:
            gateway.start()
        yield name, {"Production": v1.version, "Staging": v2.version}, gateways
    finally:
        for gateway in gateways:
            gateway.stop()


def rewards_of(gateway: Gateway, name: str) -> dict[tuple[str, str, str], float]:
    text = gateway.get("/metrics").text
    out = {}
    for what, metric in REWARD_COUNTERS.items():
        for labels, value in metric_samples(text, metric).items():
            named = dict(labels)
            if named["model"] == name:
                out[(what, named["target"], named["version"])] = value
    return out


def test_feedback_sent_to_the_other_gateway_is_credited_to_what_answered(fleet) -> None:
    name, versions, gateways = fleet
    sent: list[tuple[int, str, str, float]] = []  # (answering gateway, target, version, reward)
    posts: list[list[dict]] = [[], []]  # the feedback each gateway receives
    for index, gateway in enumerate(gateways):
        with httpx.Client(timeout=30) as client:
            for i in range(20):
                target = "Production" if i % 2 else "Staging"
                answer = client.post(gateway.url + "/invocations", json=split_payload(),
                                     headers={"X-Model-Target": target})  # fmt: skip
                assert answer.status_code == 200
                version = answer.headers["X-Model-Version"]
                assert version == versions[target]
                reward = float(i % 3) - 0.5  # -0.5, 0.5, 1.5: signs and non-binary
                sent.append((index, target, version, reward))
                posts[1 - index].append(
                    {"request_id": answer.headers["X-Feedback-Id"], "reward": reward}
                )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    to_first = gateways[0].post(f"/models/{name}/feedback", json=posts[0])
    assert to_first.json() == {"accepted": 20, "duplicates": 0, "refused": 0, "errors": []}
    refused = gateways[1].post(f"/models/{name}/feedback", json=posts[1])
    assert refused.status_code == 401  # the second one requires the token
    to_second = gateways[1].post(f"/models/{name}/feedback", json=posts[1], headers=auth)
    assert to_second.json() == {"accepted": 20, "duplicates": 0, "refused": 0, "errors": []}
    resent = gateways[1].post("/feedback", json=posts[1][0], headers=auth)
    assert resent.status_code == 200 and resent.json()["duplicate"] is True

    # Each gateway credits what the other answered; the two together: exactly what was sent.
    fleet_sums: dict[tuple[str, str, str], float] = {}
    for gateway in gateways:
        for key, value in rewards_of(gateway, name).items():
            fleet_sums[key] = fleet_sums.get(key, 0.0) + value
    for target, version in versions.items():
        rewards = [r for _, t, v, r in sent if (t, v) == (target, version)]
        assert fleet_sums["count", target, version] == len(rewards) == 20
        positive = sum(r for r in rewards if r > 0)
        negative = -sum(r for r in rewards if r < 0)
        assert fleet_sums["positive", target, version] == pytest.approx(positive)
        assert fleet_sums["negative", target, version] == pytest.approx(negative)
        assert fleet_sums["squares", target, version] == pytest.approx(sum(r * r for r in rewards))
    first_only = rewards_of(gateways[0], name)
    answered_by_second = [r for g, t, _, r in sent if g == 1 and t == "Staging"]
    assert first_only["count", "Staging", versions["Staging"]] == len(answered_by_second)
