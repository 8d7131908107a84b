"""The request path on its own: a fake pool of versions, a policy, a recorded hand-off."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from registry_watcher.state import VersionRef
from registry_watcher.targets import Target, parse_target
from registry_watcher.traffic_policy import TrafficPolicy, default_policy, policy_from_dict
from service.errors import ServingError
from service.request_path import RequestPath, ShadowLeg
from service.traffic.shadow import ShadowJob
from tests.unit.metric_fakes import fake_metrics

PROD = parse_target("Production")
STAGING = parse_target("Staging")


@dataclass
class Version:
    ref: VersionRef
    answers: list[bytes] = field(default_factory=list)

    async def submit(self, body: bytes, content_type: str | None) -> bytes:
        self.answers.append(body)
        return b'{"predictions": [%d]}' % self.ref.version

    def submit_from_thread(
        self, body: bytes, content_type: str | None, loop: Any, t: float
    ) -> bytes:
        return b"shadow"


class Pool:
    def __init__(self, versions: dict[str, dict[Target, Version | None]]) -> None:
        self.versions = versions
        self.lookups = 0

    def models(self) -> tuple[str, ...]:
        return tuple(self.versions)

    def targets(self, model: str) -> tuple[Target, ...]:
        return tuple(self.versions.get(model, {}))

    def get(self, model: str, target: Target) -> Version | None:
        self.lookups += 1
        return self.versions.get(model, {}).get(target)


def version(n: int) -> Version:
    return Version(VersionRef("m", n, f"s3://m/{n}"))


def path(
    pool: Pool, policy: TrafficPolicy | None = None
) -> tuple[RequestPath, list[ShadowJob], Any]:
    jobs: list[ShadowJob] = []
    metrics = fake_metrics()
    chosen = policy or default_policy(PROD)
    return RequestPath(pool, lambda m: chosen, jobs.append, metrics), jobs, metrics


def run(requests: RequestPath, model: str = "m", override: str | None = None) -> Any:
    return asyncio.run(requests.invoke(model, override, b"{}", "application/json"))


def refused(requests: RequestPath, model: str = "m", override: str | None = None) -> ServingError:
    with pytest.raises(ServingError) as info:
        run(requests, model, override)
    return info.value


def test_answers_with_the_policys_target_and_counts_it() -> None:
    requests, jobs, metrics = path(Pool({"m": {PROD: version(3), STAGING: version(4)}}))
    answer = run(requests)
    assert (answer.target, answer.version, json.loads(answer.body)) == (
        PROD,
        3,
        {"predictions": [3]},
    )
    assert metrics.requests.of("m", "Production", "3", "success") == 1
    assert metrics.routing.of("m", "Production", "random") == 1
    assert metrics.in_flight.of("m") == 0
    assert jobs == []


def test_a_shadowed_request_hands_its_copy_off_with_the_primary_answer() -> None:
    policy = policy_from_dict(
        {"weights": {"Production": 100}, "shadow": {"target": "Staging", "percent": 100}}
    )
    requests, jobs, _ = path(Pool({"m": {PROD: version(3), STAGING: version(4)}}), policy)
    answer = run(requests)
    assert [(j.primary_target, j.shadow_target, j.primary_answer) for j in jobs] == [
        ("Production", "Staging", answer.body)
    ]


def test_an_unknown_model_is_a_404_counted_without_its_name() -> None:
    requests, _, metrics = path(Pool({"m": {PROD: version(3)}}))
    error = refused(requests, "other")
    assert (error.status, error.error_code) == (404, "RESOURCE_DOES_NOT_EXIST")
    assert "Served models: m." in error.message
    assert metrics.requests.of("", "", "", "not_found") == 1


def test_the_default_route_is_ambiguous_with_two_models() -> None:
    requests, _, _ = path(Pool({"a": {PROD: None}, "b": {PROD: None}}))
    with pytest.raises(ServingError) as info:
        requests.model_for_default_route()
    assert info.value.status == 400
    assert "/models/a/invocations, /models/b/invocations" in info.value.message
    requests, _, _ = path(Pool({"only": {PROD: None}}))
    assert requests.model_for_default_route() == "only"


def test_pinning_refusals_are_answered_and_counted() -> None:
    requests, _, metrics = path(Pool({"m": {PROD: version(3), STAGING: None}}))
    unknown = refused(requests, override="Canary")
    assert (unknown.status, unknown.error_code) == (400, "INVALID_PARAMETER_VALUE")
    empty = refused(requests, override="Staging")
    assert (empty.status, empty.error_code) == (503, "TEMPORARILY_UNAVAILABLE")
    assert metrics.requests.of("m", "", "", "bad_request") == 1
    assert metrics.requests.of("m", "", "", "unavailable") == 1
    assert run(requests, override="3").target == PROD


def test_nothing_loaded_is_a_503_naming_the_model() -> None:
    requests, _, _ = path(Pool({"m": {PROD: None}}))
    error = refused(requests)
    assert error.status == 503 and error.message.startswith("Model 'm': ")


def test_a_target_emptied_after_each_decision_gives_up_after_three_tries() -> None:
    class Flickering(Pool):
        """Says Production is loaded to the routing decision, empty to the lookup."""

        def get(self, model: str, target: Target) -> Version | None:
            self.lookups += 1
            return version(3) if self.lookups % 2 else None

    pool = Flickering({"m": {PROD: version(3)}})
    requests, _, _ = path(pool)
    error = refused(requests)
    assert error.status == 503 and "keep changing" in error.message
    assert pool.lookups == 6


def test_refusals_before_routing_count_only_served_names() -> None:
    requests, _, metrics = path(Pool({"m": {PROD: version(3)}}))
    requests.count_refused("m", "bad_request")
    requests.count_refused("client-made", "bad_request")
    assert metrics.requests.of("m", "", "", "bad_request") == 1
    assert metrics.requests.of("", "", "", "bad_request") == 1


def test_the_shadow_leg_runs_through_the_shadow_version_and_counts() -> None:
    metrics = fake_metrics()
    leg = ShadowLeg(Pool({"m": {PROD: version(3), STAGING: version(4)}}), metrics)
    job = ShadowJob("m", "Production", "Staging", b"{}", None, b"{}", asyncio.new_event_loop())
    try:
        assert leg.run(job) == b"shadow"
    finally:
        job.loop.close()  # type: ignore[union-attr]
    with pytest.raises(RuntimeError, match="no version loaded"):
        ShadowLeg(Pool({"m": {PROD: version(3)}}), metrics).run(job)
    leg.record(job, "agree")
    assert metrics.shadow.of("m", "Production", "Staging", "agree") == 1


def test_answers_carry_a_signed_feedback_id_and_the_clients_request_id() -> None:
    from service.experiments.request_ids import Attribution, RequestIdSigner

    signer = RequestIdSigner(b"k" * 32)
    pool = Pool({"m": {PROD: version(3), STAGING: version(4)}})
    requests = RequestPath(pool, lambda m: default_policy(PROD), [].append, fake_metrics(), signer)
    assert requests.signs_ids
    made = asyncio.run(requests.invoke("m", "Staging", b"{}", "application/json"))
    attribution = signer.verify(made.feedback_id, time.time())
    assert isinstance(attribution, Attribution)
    assert (attribution.model, attribution.target, attribution.version) == ("m", "Staging", 4)
    assert made.request_id == made.feedback_id
    assert made.headers()["X-Request-Id"] == made.headers()["X-Feedback-Id"] == made.feedback_id
    own = asyncio.run(requests.invoke("m", None, b"{}", "application/json", None, "client-7"))
    assert own.headers()["X-Request-Id"] == "client-7"
    assert own.headers()["X-Feedback-Id"] != "client-7"
    assert not path(pool)[0].signs_ids  # no signer: no ids
    assert "X-Request-Id" not in run(path(pool)[0]).headers()
