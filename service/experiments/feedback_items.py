"""Feedback items as a client sends them, judged: each one is either credited to the
target and version its request id names, or refused with a reason.

An item is ``{"request_id": <X-Feedback-Id>, "reward": <finite number>}`` and/or
``"truth": <any JSON value>`` (at most MAX_TRUTH_BYTES serialized); nothing else. A
body is one item or a list of at most MAX_ITEMS. The id must verify (signature, age)
and name the model of the route it was posted to. Pure: the signer and the time are
passed in.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.experiments.request_ids import Attribution, Refusal, RequestIdSigner

MAX_ITEMS = 10_000
MAX_TRUTH_BYTES = 64 * 1024
MAX_SHOWN_ID_CHARS = 80  # of a refused id, quoted in its message
FIELDS = ("request_id", "reward", "truth")


class Reason(enum.Enum):
    """Why an item (or a whole post) was refused: the ``reason`` label of
    stageserve_feedback_refused_total, a fixed set."""

    UNSIGNED = Refusal.UNSIGNED.value
    MALFORMED = Refusal.MALFORMED.value
    FORGED = Refusal.FORGED.value
    EXPIRED = Refusal.EXPIRED.value
    WRONG_MODEL = "wrong_model"
    INVALID = "invalid"  # not an item: a field missing, unknown or of the wrong kind
    UNAUTHORIZED = "unauthorized"  # the post's token, counted once per post


@dataclass(frozen=True)
class ItemError:
    index: int
    reason: Reason
    message: str


@dataclass(frozen=True)
class FeedbackItem:
    """A verified item: what answered, and the reward and/or truth it brings."""

    index: int
    attribution: Attribution
    reward: float | None
    has_truth: bool
    truth: Any = None

    def keys(self, max_age_s: float) -> list[tuple[str, float]]:
        """What deduplicates it, with when each may be forgotten: a reward and a truth
        for the same request count once each (a label often comes after a reward)."""
        expires = self.attribution.issued_at + max_age_s
        request_id = self.attribution.request_id
        sent = (("reward", self.reward is not None), ("truth", self.has_truth))
        kinds = [kind for kind, present in sent if present]
        return [(f"{kind}:{request_id}", expires) for kind in kinds]


@dataclass(frozen=True)
class Judged:
    items: list[FeedbackItem]
    errors: list[ItemError]
    batch: bool  # a list was sent (answered with counts), not one item


class NotFeedback(ValueError):
    """The body as a whole is not feedback (answered 400, nothing counted but this)."""


def shown(text: object) -> str:
    """An id as quoted in a message: repr, cut."""
    quoted = repr(text)
    return quoted if len(quoted) <= MAX_SHOWN_ID_CHARS else quoted[: MAX_SHOWN_ID_CHARS - 3] + "..."


def judge(document: Any, model: str, signer: RequestIdSigner, now: float) -> Judged:
    """Every item of a body posted to ``model``'s feedback route, judged."""
    if isinstance(document, dict):
        raw_items: Sequence[Any] = [document]
        batch = False
    elif isinstance(document, list):
        if len(document) > MAX_ITEMS:
            raise NotFeedback(
                f"A batch holds at most {MAX_ITEMS} items; this one has {len(document)}."
            )
        raw_items, batch = document, True
    else:
        raise NotFeedback(
            'Feedback is a JSON object {"request_id": ..., "reward": ...} and/or "truth", '
            "or a list of them."
        )
    items: list[FeedbackItem] = []
    errors: list[ItemError] = []
    for index, raw in enumerate(raw_items):
        judged = check_item(index, raw, model, signer, now)
        if isinstance(judged, FeedbackItem):
            items.append(judged)
        else:
            errors.append(judged)
    return Judged(items, errors, batch)


def finite_number(value: Any) -> float | None:
    """A JSON number as a finite float; None for anything else (booleans included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        return None
    return number if math.isfinite(number) else None


def check_item(
    index: int, raw: Any, model: str, signer: RequestIdSigner, now: float
) -> FeedbackItem | ItemError:
    def invalid(message: str) -> ItemError:
        return ItemError(index, Reason.INVALID, message)

    if not isinstance(raw, dict):
        return invalid("An item is a JSON object with request_id and reward and/or truth.")
    unknown = sorted(str(key) for key in raw if key not in FIELDS)
    if unknown:
        return invalid(f"Unknown field(s) {', '.join(map(repr, unknown))}: an item has "
                       f"{', '.join(FIELDS)}.")  # fmt: skip
    if "request_id" not in raw:
        return invalid("request_id is missing: send the X-Feedback-Id header of the answer.")
    sent_reward = raw.get("reward")
    has_truth = "truth" in raw
    if sent_reward is None and not has_truth:
        return invalid("An item needs a reward, a truth, or both.")
    reward = None if sent_reward is None else finite_number(sent_reward)
    if sent_reward is not None and reward is None:
        return invalid(f"reward must be a finite number, not {shown(sent_reward)}.")
    if has_truth:
        try:
            size = len(json.dumps(raw["truth"], allow_nan=False).encode())
        except (ValueError, RecursionError):
            return invalid("truth must be a JSON value.")
        if size > MAX_TRUTH_BYTES:
            return invalid(f"truth is {size} bytes serialized; at most {MAX_TRUTH_BYTES}.")
    verdict = signer.verify(raw["request_id"], now)
    if isinstance(verdict, Refusal):
        return ItemError(index, Reason(verdict.value), verdict.message(shown(raw["request_id"])))
    if verdict.model != model:
        return ItemError(
            index,
            Reason.WRONG_MODEL,
            f"{shown(verdict.request_id)} was answered by model {verdict.model!r}, not "
            f"{model!r}: post it to that model's feedback route.",
        )
    return FeedbackItem(
        index,
        verdict,
        reward,
        has_truth,
        raw.get("truth"),
    )
