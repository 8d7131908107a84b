"""A simulated bandit against a real gateway: arm B (Staging, v2) rewards 0.60, arm A
(Production, v1) 0.50, by the version that answered (0/1 rewards, seeded).

`stageserve bandit start` (in process, against the real `mlflow server`) writes the
bandit tag and an even policy. Then the test plays the controller (which is not on
main yet) every ``BATCH`` feedback items: its rewards are the GATEWAY's own counters
read from /metrics minus the baseline taken when the bandit was first seen
(``GatewayBanditRewards``), ``bandit_step`` computes the weights, the policy tag is
written to the registry, and the gateway's poll applies it (polled on GET
/admin/models/{name}/traffic) before the next users come. Users send one prediction
each under a fresh routing key, so what the policy gives B is seen in the routing of
real requests. Measured: the feedback items until the policy gives B >= 80 %, B's share
of the requests after that, and the regret (0.10 per request answered by A) against
a fixed 50/50 split (0.05 per request). `stageserve bandit stop --winner` ends it.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import pytest
from mlflow import MlflowClient

from registry_watcher.traffic_policy import POLICY_TAG, TrafficPolicy, parse_policy
from service.cli.main import main
from service.experiments.gateway_samples import collected_samples
from service.experiments.window import Sample
from service.rollouts.bandit_config import BANDIT_TAG, BanditPlan, decode_bandit
from service.rollouts.bandit_rewards import GatewayBanditRewards
from service.rollouts.bandit_tick import bandit_step
from tests.integration.harness import ALL_FEATURES, Gateway, split_payload, wait_until

pytestmark = pytest.mark.integration

RATES = {"Production": 0.50, "Staging": 0.60}  # arm A, arm B
SEED = 20261130
BATCH = 50  # feedback items per controller tick
HORIZON = 1000  # items in all
WARM_UP = 40  # items before the bandit starts: the baseline must leave them out


@pytest.fixture
def gateway(mlflow_server, registry, model_name, tmp_path) -> Iterator[Gateway]:
    v1 = registry.register_ridge(model_name, ALL_FEATURES, alpha=1.0)
    registry.transition(model_name, v1.version, "Production")
    v2 = registry.register_ridge(model_name, ALL_FEATURES, alpha=0.3)
    registry.transition(model_name, v2.version, "Staging")
    gateway = Gateway(tmp_path, mlflow_server.uri, [model_name], "--poll-interval", "0.5")
    try:
        yield gateway.start()
    finally:
        gateway.stop()


def play(gateway: Gateway, model: str, users: range) -> dict[int, tuple[str, str]]:
    """User ``u`` sends one prediction keyed ``user-u``: (target, feedback id) by user."""
    answered: dict[int, tuple[str, str]] = {}
    failures: list[str] = []

    def run(share: range) -> None:
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            for user in share:
                answer = client.post(
                    f"/models/{model}/invocations",
                    json=split_payload(),
                    headers={"X-Routing-Key": f"user-{user}"},
                )
                if answer.status_code != 200:
                    failures.append(f"user {user}: {answer.status_code} {answer.text[:200]}")
                    continue
                headers = answer.headers
                answered[user] = (headers["X-Model-Target"], headers["X-Feedback-Id"])

    threads = [threading.Thread(target=run, args=(users[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures[:3]
    assert len(answered) == len(users)
    return answered


def reward(draw: random.Random, answered: dict[int, tuple[str, str]]) -> list[dict]:
    """Feedback items, each reward drawn (in user order) from the answering target's rate."""
    return [
        {"request_id": feedback_id, "reward": int(draw.random() < RATES[target])}
        for _, (target, feedback_id) in sorted(answered.items())
    ]


def send(gateway: Gateway, model: str, items: list[dict]) -> None:
    receipt = gateway.post(f"/models/{model}/feedback", json=items)
    assert receipt.status_code == 200, receipt.text
    assert receipt.json()["accepted"] == len(items), receipt.json()


def metrics_reader(gateway: Gateway):
    """The model's experiment series as a scrape of the gateway's /metrics gives them."""
    from prometheus_client.parser import text_string_to_metric_families

    def read(model: str) -> list[Sample]:
        text = gateway.get("/metrics").text
        scraped = SimpleNamespace(collect=lambda: text_string_to_metric_families(text))
        return collected_samples(scraped, model)

    return read


def applied(gateway: Gateway, model: str, policy: TrafficPolicy) -> float:
    """Seconds until the gateway serves ``policy``."""
    started = time.monotonic()
    wanted = policy.to_dict()
    assert wait_until(
        lambda: gateway.get(f"/admin/models/{model}/traffic").json()["policy"] == wanted, 10, 0.05
    ), f"the gateway did not apply {wanted}"
    return time.monotonic() - started


def share_of(target: str, policy: TrafficPolicy) -> float:
    return {t.text: share for t, share in policy.shares().items()}.get(target, 0.0)


def cli(*argv: str, uri: str) -> int:
    return main(["bandit", *argv, "--registry-uri", uri])


def test_bandit_moves_traffic_to_the_better_arm(gateway, mlflow_server, model_name, capsys) -> None:
    model, uri = model_name, mlflow_server.uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    draw = random.Random(SEED)
    send(gateway, model, reward(draw, play(gateway, model, range(-WARM_UP, 0))))

    # Arms that do not exist are refused before anything is written.
    assert cli("start", model, "Production", "@nope", uri=uri) == 2
    assert "no such alias" in capsys.readouterr().err
    assert cli("start", model, "Production", "Archived", uri=uri) == 2
    assert "has no version in it" in capsys.readouterr().err
    assert BANDIT_TAG not in client.get_registered_model(model).tags

    assert cli("start", model, "Production", "Staging", uri=uri) == 0
    started = json.loads(capsys.readouterr().out)
    assert started["policy"] == {"weights": {"Production": 50, "Staging": 50}, "sticky": True}
    assert cli("start", model, "Production", "Staging", uri=uri) == 2  # one at a time
    assert "already runs" in capsys.readouterr().err
    tags = client.get_registered_model(model).tags
    config: BanditPlan = decode_bandit(tags[BANDIT_TAG])
    policy = parse_policy(tags[POLICY_TAG])
    applied(gateway, model, policy)

    # The controller's part, played by the test: it sees the bandit, then ticks.
    rewards = GatewayBanditRewards(metrics_reader(gateway))
    assert rewards(model, config) == {}  # the warm-up's rewards are the baseline's
    clock = time.monotonic()
    sent = 0
    routed: list[str] = []  # the target that answered each user, in order
    reached_at: int | None = None  # feedback items when B first got >= 80 %
    writes, waits = 0, []
    while sent < HORIZON:
        answered = play(gateway, model, range(sent, sent + BATCH))
        routed += [answered[u][0] for u in sorted(answered)]
        send(gateway, model, reward(draw, answered))
        sent += BATCH
        counted = rewards(model, config)
        # Since the bandit started, across every rewrite (each one a policy change).
        assert sum(r.count for r in counted.values()) == sent
        decision = bandit_step(config, counted, policy, time.time())
        if decision.policy is not None:
            client.set_registered_model_tag(model, POLICY_TAG, decision.policy.to_json())
            waits.append(applied(gateway, model, decision.policy))
            policy, writes = decision.policy, writes + 1
        if reached_at is None and share_of("Staging", policy) >= 0.8:
            reached_at = sent
    seconds = time.monotonic() - clock

    assert reached_at is not None, f"B never had 80 %: {policy.to_dict()}"
    after = routed[reached_at:]
    b_after = after.count("Staging") / len(after) if after else None
    regret = 0.10 * routed.count("Production")
    fixed = 0.05 * HORIZON
    figures = (
        f"bandit: B (0.60) vs A (0.50), a tick every {BATCH} feedback items, floor "
        f"{config.floor:g}, min_rewards {config.min_rewards}: the policy gave B >= 80 % after "
        f"{reached_at} items; B answered {b_after:.1%} of the {len(after)} requests after; "
        f"regret over {HORIZON} items {regret:.1f} vs {fixed:.1f} for a fixed 50/50 split; "
        f"{writes} policy writes, applied in {max(waits):.2f} s at most; the loop took "
        f"{seconds:.1f} s; final policy {policy.to_dict()['weights']}"
    )
    with capsys.disabled():
        print("\n" + figures)  # the figures of the README's closing note
    assert b_after is not None and b_after >= 0.75
    assert regret < 0.6 * fixed

    assert cli("status", model, "--json", uri=uri) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["bandit"] == config.to_dict() and status["policy"] == policy.to_dict()
    assert cli("stop", model, "--winner", "Staging", uri=uri) == 0
    tags = client.get_registered_model(model).tags
    assert BANDIT_TAG not in tags
    assert parse_policy(tags[POLICY_TAG]).to_dict() == {"weights": {"Staging": 100}, "sticky": True}
    assert cli("stop", model, uri=uri) == 0  # nothing left to stop
    assert "nothing to stop" in capsys.readouterr().err
