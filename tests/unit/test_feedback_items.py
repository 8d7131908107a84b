"""Feedback items judged: what is credited, and every way an item is refused (with the
reason its counter is labelled by)."""

from __future__ import annotations

import pytest

from service.experiments.feedback_items import (
    MAX_ITEMS,
    MAX_TRUTH_BYTES,
    FeedbackItem,
    ItemError,
    NotFeedback,
    Reason,
    check_item,
    judge,
)
from service.experiments.request_ids import RequestIdSigner

NOW = 1_764_460_000.0
SIGNER = RequestIdSigner(b"k" * 32, max_age_s=3600)
ID = SIGNER.issue("m", "Staging", 4, NOW)


def check(raw: object, model: str = "m", now: float = NOW) -> FeedbackItem | ItemError:
    return check_item(0, raw, model, SIGNER, now)


def test_a_reward_and_a_truth_are_credited_to_what_answered() -> None:
    item = check({"request_id": ID, "reward": 1, "truth": {"label": "cat"}})
    assert isinstance(item, FeedbackItem)
    assert (item.attribution.target, item.attribution.version) == ("Staging", 4)
    assert (item.reward, item.has_truth, item.truth) == (1.0, True, {"label": "cat"})
    assert [key for key, _ in item.keys(3600)] == [f"reward:{ID}", f"truth:{ID}"]
    assert {expires for _, expires in item.keys(3600)} == {int(NOW) + 3600}


def test_a_null_truth_is_a_truth() -> None:
    item = check({"request_id": ID, "truth": None})
    assert isinstance(item, FeedbackItem) and item.has_truth and item.reward is None


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ([ID], "JSON object"),
        ({"reward": 1}, "request_id is missing"),
        ({"request_id": ID}, "a reward, a truth, or both"),
        ({"request_id": ID, "reward": None}, "a reward, a truth, or both"),
        ({"request_id": ID, "rewards": 1}, "Unknown field(s) 'rewards'"),
        ({"request_id": ID, "reward": "1"}, "finite number"),
        ({"request_id": ID, "reward": True}, "finite number"),
        ({"request_id": ID, "reward": float("nan")}, "finite number"),
        ({"request_id": ID, "reward": float("inf")}, "finite number"),
        ({"request_id": ID, "reward": 10**400}, "finite number"),
        ({"request_id": ID, "truth": "x" * MAX_TRUTH_BYTES}, f"at most {MAX_TRUTH_BYTES}"),
        ({"request_id": ID, "truth": float("nan")}, "JSON value"),
    ],
)
def test_invalid_items(raw: object, words: str) -> None:
    error = check(raw)
    assert isinstance(error, ItemError) and error.reason is Reason.INVALID
    assert words in error.message


def test_refused_ids_say_why() -> None:
    other_key = RequestIdSigner(b"x" * 32).issue("m", "Staging", 4, NOW)
    cases = [
        ({"request_id": "client-id-1", "reward": 1}, Reason.UNSIGNED, "X-Feedback-Id"),
        ({"request_id": "not an id!", "reward": 1}, Reason.MALFORMED, "X-Feedback-Id"),
        ({"request_id": 42, "reward": 1}, Reason.MALFORMED, "X-Feedback-Id"),
        ({"request_id": other_key, "reward": 1}, Reason.FORGED, "not issued"),
    ]
    for raw, reason, words in cases:
        error = check(raw)
        assert isinstance(error, ItemError) and error.reason is reason, raw
        assert words in error.message
    expired = check({"request_id": ID, "reward": 1}, now=NOW + 3601)
    assert isinstance(expired, ItemError) and expired.reason is Reason.EXPIRED
    wrong = check({"request_id": ID, "reward": 1}, model="n")
    assert isinstance(wrong, ItemError) and wrong.reason is Reason.WRONG_MODEL
    assert "model 'm', not 'n'" in wrong.message


def test_a_refused_id_is_quoted_short() -> None:
    error = check({"request_id": "x" * 5000, "reward": 1})
    assert isinstance(error, ItemError) and len(error.message) < 400


def test_a_body_is_one_item_or_a_bounded_list() -> None:
    single = judge({"request_id": ID, "reward": 0}, "m", SIGNER, NOW)
    assert not single.batch and len(single.items) == 1
    batch = judge([{"request_id": ID, "reward": 0}, {"request_id": "c-1", "reward": 1}], "m",
                  SIGNER, NOW)  # fmt: skip
    assert batch.batch and len(batch.items) == 1
    assert [(e.index, e.reason) for e in batch.errors] == [(1, Reason.UNSIGNED)]
    assert judge([], "m", SIGNER, NOW).batch
    for not_feedback in ("text", 3, None):
        with pytest.raises(NotFeedback):
            judge(not_feedback, "m", SIGNER, NOW)
    with pytest.raises(NotFeedback, match=f"at most {MAX_ITEMS}"):
        judge([{}] * (MAX_ITEMS + 1), "m", SIGNER, NOW)
