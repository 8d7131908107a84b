"""The feedback endpoints through HTTP: routes and models, the token, one item and a
batch, and what each post adds to the counters (a real intake and store, fake metrics)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.api.feedback import MAX_ERRORS_SHOWN, FeedbackApi, feedback_routes
from service.errors import bad_request
from service.experiments.feedback_intake import FeedbackIntake
from service.experiments.feedback_tally import AcceptedFeedback
from service.experiments.request_ids import RequestIdSigner
from service.experiments.seen_feedback import SeenFeedback
from tests.unit.metric_fakes import fake_metrics

SIGNER = RequestIdSigner(b"k" * 32)
TOKEN = "feedback-token-1"


class Served:
    def __init__(self, models: Sequence[str], token: str | None = None) -> None:
        self.metrics: Any = fake_metrics()
        self.handed: list[AcceptedFeedback] = []
        self.intake = FeedbackIntake(SIGNER, SeenFeedback(None), self.metrics, self.handed.extend)

        def default_model() -> str:
            if len(models) == 1:
                return models[0]
            raise bad_request("ambiguous: /models/a/feedback, /models/b/feedback")

        api = FeedbackApi(self.intake, lambda: models, default_model, token, 1_000_000)
        self.client = TestClient(Starlette(routes=feedback_routes(lambda: api)))

    def refused(self, model: str, reason: str) -> float:
        return float(self.metrics.feedback_refused.of(model, reason))


def issue(model: str = "m", target: str = "Staging", version: int = 2) -> str:
    return SIGNER.issue(model, target, version, time.time())


def test_one_item_is_counted_once_and_its_retry_is_a_duplicate() -> None:
    served = Served(["m"])
    request_id = issue()
    first = served.client.post("/feedback", json={"request_id": request_id, "reward": -0.5})
    assert first.status_code == 200
    assert first.json() == {"accepted": True, "duplicate": False, "request_id": request_id,
                            "model": "m", "target": "Staging", "version": 2}  # fmt: skip
    retry = served.client.post("/models/m/feedback", json={"request_id": request_id, "reward": 1})
    assert retry.status_code == 200 and retry.json()["duplicate"] is True
    m = served.metrics
    assert m.feedback.of("m", "Staging", "2", "accepted") == 1
    assert m.feedback.of("m", "Staging", "2", "duplicate") == 1
    assert m.reward_count.of("m", "Staging", "2") == 1
    assert m.reward_negative_sum.of("m", "Staging", "2") == 0.5
    assert m.reward_positive_sum.of("m", "Staging", "2") == 0
    assert m.reward_squares_sum.of("m", "Staging", "2") == 0.25
    assert m.reward_nonbinary.of("m", "Staging", "2") == 1
    assert [(h.reward, h.has_truth) for h in served.handed] == [(-0.5, False)]


def test_a_truth_after_the_reward_is_new_and_handed_on_alone() -> None:
    served = Served(["m"])
    request_id = issue()
    served.client.post("/feedback", json={"request_id": request_id, "reward": 1})
    later = served.client.post(
        "/feedback", json={"request_id": request_id, "reward": 1, "truth": "cat"}
    )
    assert later.json()["accepted"] is True
    assert served.metrics.reward_count.of("m", "Staging", "2") == 1  # the reward: once
    assert [(h.reward, h.has_truth, h.truth) for h in served.handed] == [
        (1.0, False, None),
        (None, True, "cat"),
    ]


@pytest.mark.parametrize(
    ("request_id", "reason", "words"),
    [
        ("my-own-id", "unsigned", "X-Feedback-Id"),
        (RequestIdSigner(b"z" * 32).issue("m", "Staging", 2, 0), "forged", "not issued"),
        (issue(model="other"), "wrong_model", "post it to that model"),
    ],
    ids=["unsigned", "forged", "wrong_model"],  # stable: the ids hold a random nonce
)
def test_a_refused_item_is_a_400_and_counted(request_id: str, reason: str, words: str) -> None:
    served = Served(["m"])
    answer = served.client.post("/feedback", json={"request_id": request_id, "reward": 1})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert words in answer.json()["message"]
    assert served.refused("m", reason) == 1
    assert served.handed == []


def test_a_batch_answers_counts_and_the_refused_items() -> None:
    served = Served(["m"])
    good = [issue(target=t) for t in ("Production", "Staging", "Staging")]
    items = [{"request_id": i, "reward": 1} for i in good]
    items += [{"request_id": good[0], "reward": 0}, {"request_id": "x", "reward": 1}, {}]
    answer = served.client.post("/feedback", json=items)
    assert answer.status_code == 200
    body = answer.json()
    assert (body["accepted"], body["duplicates"], body["refused"]) == (3, 1, 2)
    assert [(e["index"], e["reason"]) for e in body["errors"]] == [(4, "unsigned"), (5, "invalid")]
    assert served.metrics.feedback.of("m", "Production", "2", "accepted") == 1
    assert served.metrics.feedback.of("m", "Staging", "2", "accepted") == 2
    many_errors = served.client.post("/feedback", json=[{}] * (MAX_ERRORS_SHOWN + 5)).json()
    assert many_errors["refused"] == MAX_ERRORS_SHOWN + 5
    assert len(many_errors["errors"]) == MAX_ERRORS_SHOWN


def test_routes_and_bodies() -> None:
    served = Served(["a", "b"])
    ambiguous = served.client.post("/feedback", json={})
    assert ambiguous.status_code == 400 and "/models/a/feedback" in ambiguous.json()["message"]
    unknown = served.client.post("/models/zz/feedback", json={})
    assert unknown.status_code == 404
    not_json = served.client.post("/models/a/feedback", content=b"{nope")
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["message"]
    not_feedback = served.client.post("/models/a/feedback", content=json.dumps("text"))
    assert not_feedback.status_code == 400
    assert served.refused("a", "invalid") == 2
    assert served.client.get("/models/a/feedback").status_code == 405


def test_with_a_token_only_its_bearer_may_post() -> None:
    served = Served(["m"], token=TOKEN)
    item = {"request_id": issue(), "reward": 1}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        refused = served.client.post("/feedback", json=item, headers=headers)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        assert TOKEN not in refused.text
    assert served.refused("m", "unauthorized") == 3
    ok = served.client.post("/feedback", json=item, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json()["accepted"] is True
